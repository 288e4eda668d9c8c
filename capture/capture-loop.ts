/**
 * Capture of one source database: stream its slot, write every committed source transaction into
 * the outbox in commit order, confirm the slot only after that outbox transaction committed.
 *
 * Why nothing is lost or written twice, whatever crashes when:
 *  - the slot is confirmed up to a transaction only after the outbox transaction holding it has
 *    committed, so a crash before that commit leaves the slot where it was and the server sends
 *    the transaction again;
 *  - the outbox transaction also records the source position it reached
 *    (pipeline.capture_progress.lsn), so a crash after the commit and before the confirmation,
 *    which makes the server send it again too, finds it recorded and skips it;
 *  - the outbox position and the slot are only ever moved forward, by one capture at a time per
 *    source (the progress row is locked in every write).
 *
 * Per-row order: a source transaction is written whole, after every transaction that committed
 * before it, in one INSERT whose rows take outbox ids in the order the server sent them; two
 * changes of one source row are in commit order (a writer waits for the row lock of the one before
 * it), so their outbox ids follow the true order of the changes, as the versioned apply needs.
 */
import pg from 'pg';
import {
  claimCaptureSource,
  type CaptureProgressRow,
  markPublicationGap,
  markSourceLost,
  readCaptureProgress,
  recordIdlePosition,
  setCaptureSwitch,
  writeCapturedTransactions,
} from '../outbox/capture-progress';
import { joinCaptureLayout } from '../outbox/capture-layout';
import { tablesWithCaptureTriggers } from './capture-triggers';
import { HistoryDivergedError, ResendCheck, sourceWalEnd, walWentBack } from './history-check';
import { readHistoryStart, type HistoryStart } from './history-start';
import { formatLsn, pgTimeToMs, type ReplicationFrame } from './pgoutput';
import { PublicationMissingError, ReplicationStream, SlotLostError } from './replication-stream';
import { connectCancellable, endWithin, settlesWithin } from '../db/cancellable';
import { emitTick } from './ticks';
import { TransactionAssembler, type CapturedTransaction } from './transactions';
import type { CaptureSource } from './sources';
import { contractTableOids, sourceTypes, type SourceTable } from './source-tables';
import { SourceSetupError } from './row-image';
import { dropSlotOnceFree, ensureSlot, readSlot, unpublishedTables } from './slot';
import { faultPoint } from '../activities/drain/fault-injection';
import { loadReadChunks, type StoredChunk } from '../outbox/capture-chunks';
import type { ChunkOutcome } from '../outbox/capture-progress';
import { orderLoadKeys, rowsOfChunk } from './chunk-rows';
import type { CapturedRow } from './row-image';
import {
  HistoryTooShortError,
  rowKey,
  truncateKey,
  WatermarkWindows,
  type ClosedWindow,
  type TransactionChanges,
} from './watermark-windows';
import { recordCaptureWrite } from '../tracing/change-trace';
import { announceOutboxWrite } from '../outbox/written-signal';
import { logger } from '../log/logger';

export interface CaptureRunOptions {
  source: CaptureSource;
  /** The pipeline's database (outbox, capture progress). */
  pipeline: pg.Pool;
  /** Stop after this long (the activity's budget); 0 or absent: until aborted. */
  budgetMs?: number;
  tickMs: number;
  /** Source transactions are written together until this many rows are pending. */
  maxBatchRows?: number;
  signal?: AbortSignal;
  /** Called after every outbox write and at least every second: the activity heartbeats with it. */
  onProgress?: (p: CaptureProgress) => void;
  log?: (message: string) => void;
}

export interface CaptureProgress {
  source: string;
  /** Source position written into the outbox (pg_lsn text). */
  lsn: string;
  transactions: number;
  rows: number;
  /** The newest tick written: every source change committed before it is in the outbox. */
  coveredAtMs: number | null;
  /** Whether the slot was created by this run (changes before it are not in the stream). */
  slotCreated: boolean;
  /** The source handed back to the trigger capture: this capture is done. */
  handedBack: boolean;
  /** The slot was found lost and created again: the store needs a refill from this source. */
  slotLost: boolean;
  /**
   * The loss was recorded with a TRUNCATE of the source's tables (markSourceLost): the drain
   * empties the store and starts the refill. (A capture of older code, in a rolling deploy, does
   * not say so: the workflow then starts the refill itself.)
   */
  refillQueued: boolean;
}

/**
 * A capture session: the replication stream, the tick connection and what has been read but not yet
 * written, kept across runs (activities) so a new run continues where the last stopped instead of
 * having the server decode the slot again from its restart point (with a transaction held open on
 * the source, that is everything since it began). Nothing durable lives here: a lost session is
 * re-opened from the slot and the recorded position.
 */
/** Sources already warned about (once per process, not per session). */
const warnedWaitsHidden = new Set<string>();

export class CaptureSession {
  private constructor(
    readonly source: CaptureSource,
    private readonly pipeline: pg.Pool,
    private readonly stream: ReplicationStream,
    private readonly admin: pg.Client,
    private readonly state: CaptureState,
  ) {}

  /**
   * Opens a session: the slot (created when missing or unusable), the stream, the source taken.
   * `signal` ends the open where it waits (`ops pause`, the worker's shutdown; creating a slot waits
   * for every transaction running on the source, however long one is held open): every connection
   * it opened is closed and the signal's reason thrown, a cancellation rather than a failure.
   * Nothing is left that the next open would not find as this one did: aborted before the slot's
   * creation, nothing was recorded; during it, the creation is cancelled and no slot is left (a
   * loss recorded just before stays recorded, as after a crash there: capture/slot.ts); once the
   * stream has started, the open finishes its few short queries and the run returns at once.
   */
  static async open(source: CaptureSource, pipeline: pg.Pool, signal?: AbortSignal): Promise<CaptureSession> {
    signal?.throwIfAborted();
    const admin = new pg.Client({ connectionString: source.url, application_name: 'fresh-badges-capture-ticks' });
    // A failed tick query reports it. A lost tick connection ends the session's health: its ticks
    // would fail from then on (coverage, and reads, stuck) while the stream itself goes on.
    const adminLost = { lost: false };
    admin.on('error', () => void (adminLost.lost = true));
    admin.on('end', () => void (adminLost.lost = true));
    try {
      await connectCancellable(admin, signal);
      const { created, lost } = await readySlot(admin, pipeline, source, signal);
      const stream = await ReplicationStream.start({
        connectionString: source.url,
        slot: source.slot,
        publication: source.publication,
        signal,
      });
      let taken: TakenSource;
      let tableOids: Map<number, SourceTable>;
      let types: Map<number, number | null>;
      try {
        taken = await takeSource(admin, pipeline, source, created, lost);
        const tables = await contractTableOids(admin, source.tables);
        const lacking = [...tables.values()].filter((t) => t.identityLacks);
        if (lacking.length)
          throw new SourceSetupError(
            `capture of ${source.name}: ${lacking.map((t) => `shop.${t.table}'s ${t.identityLacks}`).join('; ')}. Its updates and deletes cannot be captured (each would mark the source for a refill), so capture waits, asked again every 30 s; reads stay stale until then`,
          );
        tableOids = new Map([...tables].map(([oid, t]) => [oid, t.table]));
        types = await sourceTypes(admin);
        // Again now that this session holds the source: a hand-back to the triggers that committed
        // them since the first check released the source (moving its generation past any session
        // that took it before), and this session took it after.
        await refuseTriggerCaptured(admin, pipeline, source);
      } catch (err) {
        await stream.close().catch(() => {});
        throw err;
      }
      const state = sessionState(source, taken, adminLost);
      state.assembler.knowContractTables(tableOids);
      state.assembler.knowTypes(types);
      // The changes a write could not capture came from a catalog of their time: if the tables are
      // as capture needs them now, the session goes on, knowing the source's types anew.
      state.recheckTables = async () => {
        try {
          const now = await contractTableOids(admin, source.tables);
          if ([...now.values()].some((t) => t.identityLacks)) state.reopen = true;
          else state.assembler.knowTypes(await sourceTypes(admin));
        } catch {
          state.reopen = true; // (the next session's open checks them)
        }
      };
      return new CaptureSession(source, pipeline, stream, admin, state);
    } catch (err) {
      await admin.end().catch(() => {});
      // aborted: a cancellation, whatever the wait it ended raised (a statement cancelled, a connection ended)
      throw signal?.aborted ? signal.reason : err;
    }
  }

  /** Streams until the budget is spent or the signal aborts; writes what it read before returning. */
  async run(opts: Omit<CaptureRunOptions, 'source' | 'pipeline'>): Promise<CaptureProgress> {
    this.state.transactions = 0;
    this.state.rows = 0;
    try {
      await captureUntilDone(
        { ...opts, source: this.source, pipeline: this.pipeline },
        this.stream,
        this.admin,
        this.state,
      );
    } catch (err) {
      if (err instanceof PublicationMissingError) throw await this.undecodableSlot(err);
      throw err;
    }
    const progress = this.state.progress();
    this.state.slotLost = false; // reported once
    return progress;
  }

  /**
   * The stream found the publication missing at a change. If the source has it now, it was dropped
   * and created again after the slot's position: the changes made between can never be decoded
   * from this slot, and every session would fail on the first of them for good. The slot is
   * dropped: the next session creates it and marks the source lost (readySlot), and the store is
   * refilled from a snapshot, reads stale meanwhile. (A publication still missing is the source's
   * set-up to do: the error as it is, asked again every 30 s.)
   */
  private async undecodableSlot(err: PublicationMissingError): Promise<Error> {
    this.state.spent = true;
    const exists = await this.admin
      .query<{ ok: boolean }>(`select exists (select 1 from pg_catalog.pg_publication where pubname = $1) as ok`, [
        this.source.publication,
      ])
      .then((r) => r.rows[0]!.ok)
      .catch(() => false);
    if (!exists) return err;
    await this.stream.close().catch(() => {});
    const why = `the slot of ${this.source.name} cannot decode its changes: ${err.message.replace(/: run sql\/source-setup\.sql.*$/, '')}, though the source has it now (dropped and created again since the slot's position)`;
    let dropped: boolean;
    try {
      dropped = await dropSlotOnceFree(this.admin, this.source.slot);
    } catch (dropErr) {
      // (asked again at the next session, which fails the same way first)
      return new Error(`${why}; dropping the slot failed: ${(dropErr as Error).message}`);
    }
    const message = `${why}. ${dropped ? 'The slot was dropped' : 'The slot is gone'}; the next session creates it and the source is refilled from a snapshot`;
    logger('capture').warn(message);
    return new SlotLostError(message);
  }

  /**
   * False once the stream or the tick connection failed, the chunk windows lost track
   * (watermark-windows.ts, suspects), or the stream reached a hand-back to the triggers (nothing
   * after it is this capture's: each run would return at once): the session must be closed and a
   * new one opened (which refuses a source the triggers capture: readySlot).
   */
  get healthy(): boolean {
    return (
      this.stream.healthy &&
      !this.state.tickConnection.lost &&
      !this.state.windows.overflowed &&
      !this.state.spent &&
      !this.state.reopen &&
      !this.state.handedBack
    );
  }

  async close(): Promise<void> {
    await this.stream.close();
    await endWithin(this.admin, 2_000);
  }
}

/** One capture run with a session of its own (tests, benchmarks, a process of its own). */
export async function runCapture(opts: CaptureRunOptions): Promise<CaptureProgress> {
  const session = await CaptureSession.open(opts.source, opts.pipeline, opts.signal);
  try {
    return await session.run(opts);
  } finally {
    await session.close();
  }
}

/**
 * The source's slot, ready to stream: created when missing or unusable (a source captured before is
 * marked lost first), and a hand-over from the triggers its new slot can never see the end of given
 * up. `signal` cancels the slot's creation (capture/slot.ts).
 */
async function readySlot(
  admin: pg.Client,
  pipeline: pg.Pool,
  source: CaptureSource,
  signal: AbortSignal | undefined,
): Promise<{ created: boolean; lost: boolean }> {
  await refuseTriggerCaptured(admin, pipeline, source);
  // A source joining a pipeline that captured another layout before is marked lost here,
  // before its slot exists (outbox/capture-layout.ts).
  await joinLayout(pipeline, source);
  await refuseUnpublishedTables(admin, pipeline, source);
  const before = await readCaptureProgress(pipeline, source.name);
  // A source captured before whose slot is missing or unusable: it was dropped, invalidated or
  // lost in a failover, and the changes in between are not in the outbox. Recorded before the
  // new slot exists, so a crash in between cannot hide it, and judged on the reading that
  // decides to create it (a slot invalidated just after an earlier reading is lost too). A
  // hand-over from the triggers under way counts too, though nothing was written yet: its slot
  // was created before it began (and the triggers dropped since), and a new one would never see
  // its marker.
  const { created, lost } = await slotMarkingLoss(admin, pipeline, source, before, signal);
  // A slot lost during a hand-over from the triggers: the new slot starts after the hand-over
  // marker and would never see it (every row dropped as the triggers'). Creating the slot
  // waited for transactions in progress, so triggers gone now were dropped before its start.
  if (lost && before?.switchId && !(await tablesWithCaptureTriggers(admin, source.tables)).length)
    await setCaptureSwitch(pipeline, source.name, null);
  return { created, lost };
}

/**
 * A source whose tables carry the capture triggers is captured by them (CAPTURE_MODE=trigger):
 * a session from the WAL would write every change a second time. Only a hand-over to the WAL
 * under way (its switch recorded: mode-switch.ts) captures such a source, dropping the rows the
 * triggers wrote. Refused before anything is recorded or created: a capture chain left running
 * on a worker of the other mode, or retried after a hand-back, changes nothing.
 */
async function refuseTriggerCaptured(admin: pg.Client, pipeline: pg.Pool, source: CaptureSource): Promise<void> {
  if ((await readCaptureProgress(pipeline, source.name))?.switchId) return;
  const tables = await tablesWithCaptureTriggers(admin, source.tables, { enabledOnly: true });
  // Triggers in another database write that database's outbox, not this pipeline's (a source
  // cloned from an all-in-one database, say): nothing is written twice here.
  if (!tables.length || (await databaseIdentity(admin)) !== (await databaseIdentity(pipeline))) return;
  throw new TriggerCapturedError(
    `capture: ${source.name}: its tables (${tables.join(', ')}) carry the capture triggers, which write its changes into this outbox (CAPTURE_MODE=trigger); a capture from the WAL beside them would write each change twice, so none starts. To capture from the WAL, run npm start with CAPTURE_MODE=logical (it hands the source over); to finish a hand-back to the triggers, run npm start with CAPTURE_MODE=trigger; and stop workers running the other mode`,
  );
}

/** A capture refused because the source's own triggers capture it (readySlot); retried slowly. */
export class TriggerCapturedError extends Error {
  override name = 'TriggerCaptured';
}

/**
 * A source table the publication does not carry in full (a table dropped from it by hand, one
 * created after the publication, a publication limited to some operations, a row filter or a
 * column list): its changes never reach the outbox, even once the publication is mended (pgoutput
 * judges each change by the catalog of its time), while ticks would go on vouching for the source.
 * Checked as a session opens and with every tick (emitTick writes none then): the source is
 * marked as having a gap (markPublicationGap: the store emptied and refilled, reads stale until
 * then) and the session refused or ended, asked again every 30 s until the publication is mended.
 */
async function refuseUnpublishedTables(admin: pg.Client, pipeline: pg.Pool, source: CaptureSource): Promise<void> {
  const missing = await unpublishedTables(admin, source.publication, source.tables);
  if (missing.length) throw await publicationGap(pipeline, source, missing);
}

/** Marks the source's gap (once: markPublicationGap) and says what to do. */
async function publicationGap(
  pipeline: pg.Pool,
  source: CaptureSource,
  missing: string[],
): Promise<PublicationIncompleteError> {
  if (await markPublicationGap(pipeline, source.name, source.tables))
    logger('capture').warn(
      `publication ${source.publication} of ${source.name} leaves out changes of ${missing.join(', ')}: the store is emptied and refilled once capture runs again (docs/capture.md)`,
    );
  return new PublicationIncompleteError(
    `capture of ${source.name}: publication ${source.publication} does not publish every insert, update, delete and truncate of ${missing.map((t) => `shop.${t}`).join(', ')} (or filters their rows or columns); their changes never reach the store. Run sql/source-setup.sql on that database as its owner (docs/capture.md); reads stay stale until then, and the store is refilled after`,
  );
}

export class PublicationIncompleteError extends Error {
  override name = 'PublicationIncomplete';
}

/** Which database a connection is in: its server's system identifier and the database's name. */
async function databaseIdentity(db: pg.ClientBase | pg.Pool): Promise<string> {
  return (
    await db.query<{ id: string }>(
      `select (select system_identifier from pg_control_system())::text || '/' || current_database() as id`,
    )
  ).rows[0]!.id;
}

/** What a session that has just started the stream resumes from, and the generation it took. */
interface TakenSource {
  historyStart: HistoryStart;
  generation: number;
  recorded: CaptureProgressRow | null;
  slotCreated: boolean;
  /** The slot's confirmed position, when the session did not create it. */
  slotAt: bigint | null;
  /** The slot was lost, or the writes or the history the pipeline database recorded. */
  lost: boolean;
}

/** Once this session holds the slot's stream: the source checked against what was recorded, and taken. */
async function takeSource(
  admin: pg.Client,
  pipeline: pg.Pool,
  source: CaptureSource,
  slotCreated: boolean,
  lost: boolean,
): Promise<TakenSource> {
  // What the stream will never send and a chunk read soon may still not see (history-start.ts).
  const historyStart = await readHistoryStart(admin);
  // This session holds the slot's stream: nobody else moves its confirmed position now.
  const slotNow = (await readSlot(admin, source.slot)).confirmedFlushLsn;
  const slotAt = slotCreated ? null : slotNow;
  const writesLost = !lost && (await writesLostBefore(pipeline, source, slotAt));
  const wentBack = !lost && !writesLost && (await historyWentBack(pipeline, admin, source, slotAt));
  // Taken once this session holds the slot's stream: from here on, the writes of any older
  // session (one that outlived its activity, or streamed the old primary's slot) fail. A slot
  // created now starts the recorded position at its own start, so a later slot past the
  // recorded position tells lost writes from this session's first one on.
  const generation = await claimCaptureSource(pipeline, source.name, slotAt, slotCreated ? slotNow : null);
  // again: a lost slot reset what it records
  const recorded = await readCaptureProgress(pipeline, source.name);
  return { historyStart, generation, recorded, slotCreated, slotAt, lost: lost || writesLost || wentBack };
}

/** A new session's state, from what it took. */
function sessionState(source: CaptureSource, taken: TakenSource, tickConnection: { lost: boolean }): CaptureState {
  const { recorded, historyStart, slotAt } = taken;
  const state = new CaptureState(source, recorded?.lsn ?? 0n, taken.slotCreated, recorded?.coveredAtMs ?? null);
  state.generation = taken.generation;
  state.windows.begin(historyStart.snapshot, historyStart.waiting, Date.now());
  if (!historyStart.waitsVisible && !warnedWaitsHidden.has(source.name)) {
    warnedWaitsHidden.add(source.name);
    logger('capture').warn(
      `capture of ${source.name}: its role cannot see other sessions' waits (grant pg_read_all_stats, sql/source-setup.sql); a commit held by a synchronous standby across a capture restart would go unseen by chunk reads`,
    );
  }
  state.switchId = recorded?.switchId ?? null;
  state.slotLost = taken.lost;
  // The slot confirmed behind the recorded position: what the stream sends again up to it must
  // be what was captured (capture/history-check.ts).
  if (slotAt !== null && recorded?.lastTransaction && recorded.lsn > slotAt)
    state.resend = new ResendCheck(recorded.lsn, recorded.lastTransaction, slotAt);
  state.tickConnection = tickConnection;
  return state;
}

/**
 * The source's slot, created when missing or unusable; a source captured before is marked lost
 * first (not once `signal` has aborted: then nothing is marked and no slot created).
 */
async function slotMarkingLoss(
  admin: pg.Client,
  pipeline: pg.Pool,
  source: CaptureSource,
  before: CaptureProgressRow | null,
  signal: AbortSignal | undefined,
): Promise<{ created: boolean; lost: boolean }> {
  const found = { lost: false };
  const cancel = signal && { signal, connectionString: source.url };
  const created = await ensureSlot(
    admin,
    source.slot,
    async () => {
      if (!capturedBefore(before)) return;
      found.lost = true;
      await markSlotLost(pipeline, source);
    },
    cancel,
  );
  return { created, lost: found.lost };
}

/** Records the configuration's sources in the pipeline database, saying what changed. */
async function joinLayout(pipeline: pg.Pool, source: CaptureSource): Promise<void> {
  const change = await joinCaptureLayout(pipeline, source.layout);
  for (const name of change.markedLost)
    logger('capture').warn(
      `source ${name} joins a pipeline that captured other sources before: the changes of its tables made before its slot existed are in no outbox, so the store is emptied and refilled from the sources and its reads stay stale until then (docs/operations.md)`,
    );
  for (const { source: name, slot } of change.retired)
    logger('capture').warn(
      `source ${name} is no longer configured and is forgotten; its slot ${slot} stays on its database and keeps WAL until dropped there: select pg_drop_replication_slot('${slot}')`,
    );
}

/** The source was captured before (or a hand-over to this capture was under way). */
function capturedBefore(before: CaptureProgressRow | null): boolean {
  return !!before && (before.lsn > 0n || before.coveredAtMs !== null || before.switchId !== null);
}

async function markSlotLost(pipeline: pg.Pool, source: CaptureSource): Promise<void> {
  await markSourceLost(pipeline, source.name, source.tables);
  logger('capture').warn(
    `the replication slot of ${source.name} was lost and is created again; changes between are missing, so the store is emptied and refilled from the sources and its reads stay stale until then (docs/capture.md)`,
  );
}

/**
 * The slot confirmed past what the pipeline database recorded: every position is recorded before
 * it is confirmed (migration 015), so the database lost capture writes it had committed (a
 * failover to a standby behind it, a restore). The stream resumes at the slot's position and will
 * never send those changes again: the source is marked lost (its slot is kept). Judged while this
 * session holds the stream, so no other session moves the slot meanwhile.
 */
async function writesLostBefore(pipeline: pg.Pool, source: CaptureSource, slotAt: bigint | null): Promise<boolean> {
  if (slotAt === null) return false;
  const row = await readCaptureProgress(pipeline, source.name);
  if (!row?.confirmsRecorded || slotAt <= row.lsn) return false;
  await markSourceLost(pipeline, source.name, source.tables);
  logger('capture').warn(
    `the replication slot of ${source.name} confirmed ${formatLsn(slotAt)}, past the ${formatLsn(row.lsn)} the pipeline database recorded: it lost capture writes (a failover to a standby behind it, or a restore), so the store is emptied and refilled from the sources and its reads stay stale until then (docs/capture.md)`,
  );
  return true;
}

/**
 * The source's WAL ends before the position the pipeline database recorded: the source went back
 * (restored from a backup or a disk snapshot, its slot with it). The store holds changes the source
 * no longer has, and the stream would skip its new ones up to there as written: the source is
 * marked lost. (Once the source has written past the recorded position, the stream tells it:
 * ResendCheck.)
 */
async function historyWentBack(
  pipeline: pg.Pool,
  admin: pg.Client,
  source: CaptureSource,
  slotAt: bigint | null,
): Promise<boolean> {
  if (slotAt === null) return false;
  const row = await readCaptureProgress(pipeline, source.name);
  const why = row && row.lsn > 0n ? walWentBack(await sourceWalEnd(admin), row.lsn) : null;
  if (!why) return false;
  await markSourceLost(pipeline, source.name, source.tables);
  logger('capture').warn(new HistoryDivergedError(source.name, why).message);
  return true;
}

/** A transaction read and not yet written, with the chunk windows it closed (high watermarks). */
interface PendingTransaction extends CapturedTransaction {
  /** The high watermarks it holds: each chunk's id, its token (migration 023) and its window. */
  highs?: { chunk: string; token?: string; window: ClosedWindow | null }[];
}

class CaptureState {
  readonly assembler: TransactionAssembler;
  readonly windows = new WatermarkWindows();
  pending: PendingTransaction[] = [];
  pendingRows = 0;
  /** When the oldest pending transaction was read. */
  pendingSince = 0;
  /** The last keepalive's position: everything the server sent before it has been read. */
  keepaliveLsn = 0n;
  /** Handing over from the trigger capture: rows before this marker were written by the triggers. */
  switchId: string | null = null;
  /** The pending batch holds that marker. */
  switchInBatch = false;
  /** A hand-back marker was met: the trigger capture writes what follows; this capture is done. */
  handedBack = false;
  /** This session found the slot lost (reported once: the run starts the refill). */
  slotLost = false;
  /** The tick connection's state: lost, the session's ticks (so its coverage) would stall. */
  tickConnection = { lost: false };
  /** The generation this session took (claimCaptureSource): its writes check it. */
  generation: number | undefined = undefined;
  /** Checks what the stream sends again below the recorded position (capture/history-check.ts). */
  resend: ResendCheck | null = null;
  /** Why the source's history is not the one captured (ResendCheck): the session stops. */
  diverged: string | null = null;
  /** The history diverged: this session's stream is of no more use (the next run opens a new one). */
  spent = false;
  /**
   * A write marked the source for a refill over a change it could not capture, and the source's
   * tables still lack a replica identity it needs (recheckTables): the session ends, and the next
   * one is refused as it opens, naming the fix, instead of a refill per change.
   */
  reopen = false;
  /** After such a write: checks the source's tables and types now (CaptureSession.open sets it). */
  recheckTables: (() => Promise<void>) | null = null;
  /** This run's counts. */
  transactions = 0;
  rows = 0;
  constructor(
    readonly source: CaptureSource,
    public writtenLsn: bigint,
    readonly slotCreated: boolean,
    public coveredAtMs: number | null,
  ) {
    // coverage counts this capture's own ticks only (capture/ticks.ts)
    this.assembler = new TransactionAssembler(source.slot);
  }

  progress(): CaptureProgress {
    return {
      source: this.source.name,
      lsn: formatLsn(this.writtenLsn),
      transactions: this.transactions,
      rows: this.rows,
      coveredAtMs: this.coveredAtMs,
      slotCreated: this.slotCreated,
      handedBack: this.handedBack,
      slotLost: this.slotLost,
      refillQueued: this.slotLost,
    };
  }
}

async function captureUntilDone(
  opts: CaptureRunOptions,
  stream: ReplicationStream,
  admin: pg.Client,
  state: CaptureState,
): Promise<void> {
  const stopAt = opts.budgetMs ? Date.now() + opts.budgetMs : Infinity;
  const maxRows = opts.maxBatchRows ?? 20_000;
  const ticker = sessionTicker(opts, stream, admin, state);
  let lastReport = 0;
  let lastIdleConfirm = 0;
  // One outbox write in flight while the next batch is read (writes stay in order: the next
  // starts when this one has committed and the slot was told).
  let writing: Promise<void> | null = null;
  // A failed write fails the run: nothing after it may be written (that would leave a gap).
  let failed: Error | null = null;
  const startWrite = () => {
    writing = flush(opts, stream, state)
      .then(() => {
        opts.onProgress?.(state.progress());
        lastReport = Date.now();
      })
      .catch((err: Error) => void (failed = err))
      .finally(() => (writing = null));
  };
  const check = () => {
    if (failed) throw failed;
  };
  try {
    while (runGoesOn(opts, state, stopAt)) {
      check();
      ticker.check();
      // While a write is in flight, let its round trips (and the drain's, in the worker) run
      // between batches of frames: a take of queued frames never waits, so without this the
      // write would not move until the queue is empty.
      if (writing) await new Promise((resolve) => setImmediate(resolve));
      const frames = await stream.take(5_000, waitFor(state, opts.tickMs, !!writing));
      readFrames(frames, state);
      if (state.diverged) {
        await stopDiverged(opts, state, writing);
        break;
      }
      const ready = readyToWrite(state, frames.length, maxRows);
      if (writing && (ready || frames.length === 0)) await writing; // the next batch waits its turn
      check();
      // Not awaited: the next batch is read while this one is written (a backlog moves at the
      // speed of the slower of the two, not their sum).
      if (ready) {
        startWrite();
      } else if (!writing && idlePositionToConfirm(state, stream) && Date.now() - lastIdleConfirm >= IDLE_CONFIRM_MS) {
        lastIdleConfirm = Date.now();
        writing = confirmIdle(opts, stream, state)
          .catch((err: Error) => void (failed = err))
          .finally(() => (writing = null));
      }
      if (Date.now() - lastReport >= 1_000) {
        opts.onProgress?.(state.progress());
        lastReport = Date.now();
      }
    }
    if (writing) await writing;
    // (after a divergence a failed write in flight no longer matters: the source is marked lost and
    // the session spent; the run reports the loss)
    if (!state.spent) check();
    if (state.pending.length) await flush(opts, stream, state);
  } finally {
    await (writing as Promise<void> | null);
    await ticker.stop();
  }
}

/**
 * The stream showed the source's history is not the one captured: once the write in flight is done
 * (nothing past the recorded position was read, so nothing of the new history), the source is
 * marked lost and the run ends, reporting the loss (slotLost, refillQueued: the workflow says so,
 * the drain empties the store and refills it). The session is spent: the next run opens a new one,
 * which resumes from the slot and skips nothing (the recorded position is cleared). A session left
 * behind (a newer one took the source) marks nothing and fails with the finding.
 */
async function stopDiverged(
  opts: CaptureRunOptions,
  state: CaptureState,
  writing: Promise<void> | null,
): Promise<void> {
  await writing;
  if (!(await markSourceLost(opts.pipeline, state.source.name, state.source.tables, state.generation)))
    throw new HistoryDivergedError(state.source.name, state.diverged!, true);
  logger('capture').warn(new HistoryDivergedError(state.source.name, state.diverged!).message);
  state.slotLost = true;
  state.spent = true;
  state.writtenLsn = 0n; // what the pipeline database records now (the next session starts at the slot)
  state.pending = [];
  state.pendingRows = 0;
}

/**
 * Idle: every transaction the server sent before its keepalive is written; the slot may move up to
 * it (so it does not keep WAL of other databases' or unpublished tables' work), once the pipeline
 * database has recorded it (the slot is never past the recorded position: CaptureSession.open
 * tells a lost capture write by it). Recorded, it is the position this session stands for: a
 * later write finding the recorded position behind it tells lost writes, and the transactions the
 * stream sends later end past it.
 */
async function confirmIdle(opts: CaptureRunOptions, stream: ReplicationStream, state: CaptureState): Promise<void> {
  const lsn = state.keepaliveLsn;
  await recordIdlePosition(opts.pipeline, state.source.name, lsn, state.generation, state.writtenLsn);
  if (lsn > state.writtenLsn) state.writtenLsn = lsn;
  stream.confirm(lsn);
}

/** An idle position is recorded and confirmed at most this often (the ticks move the slot too). */
const IDLE_CONFIRM_MS = 1_000;

/**
 * A small write waits this long for more source transactions (one outbox transaction for several
 * instead of one each: at 2,000 changes/s, half the pipeline database's commits), and never longer.
 */
const COALESCE_MS = 5;
/** A write of this many rows is worth its commit: it does not wait. */
const COALESCE_ROWS = 500;

/** Whether the pending transactions should be written now. */
function readyToWrite(state: CaptureState, framesRead: number, maxRows: number): boolean {
  if (!state.pending.length) return false;
  if (state.pendingRows >= maxRows) return true;
  if (framesRead === 5_000) return false; // the stream has more right now: read it first
  return state.pendingRows >= COALESCE_ROWS || Date.now() - state.pendingSince >= COALESCE_MS;
}

/** How long the next read may wait for the first frame. */
function waitFor(state: CaptureState, tickMs: number, writing: boolean): number {
  if (writing) return 0;
  if (state.pending.length) return Math.max(0, COALESCE_MS - (Date.now() - state.pendingSince));
  return Math.min(tickMs, 50);
}

/** Feeds frames to the assembler; completed transactions not yet written join the pending batch. */
function readFrames(frames: ReplicationFrame[], state: CaptureState): void {
  for (const frame of frames) {
    if (frame.kind === 'keepalive') {
      if ((state.diverged = state.resend?.keepalive(frame.walEnd) ?? null)) return;
      state.keepaliveLsn = frame.walEnd;
      continue;
    }
    const msg = frame.message;
    const done = state.assembler.push(msg);
    if (msg.kind === 'begin') state.assembler.noteCommitTime(pgTimeToMs(msg.commitTimeUs));
    if (!done) continue;
    if ((state.diverged = state.resend?.transaction(done) ?? null)) return; // nothing of it is kept
    const highs = watermarks(done, state);
    if (done.endLsn <= state.writtenLsn || state.handedBack) {
      // written before (its chunks with it), or after the hand-back: nothing of it is written
      // now, and the history its chunks' windows hold may go
      for (const h of highs) if (h.window) state.windows.release(h.window);
      continue;
    }
    // Before the hand-over's marker the triggers write every change, with outbox ids of their own,
    // some lower than this transaction's: a chunk's rows placed here could come after a newer
    // change of theirs. Abandoned: its reader reads it again, once this capture writes alone.
    const triggersWrite = state.switchId !== null;
    const kept: PendingTransaction = onlySourceTables(handOver(done, state), state.source);
    if (highs.length) kept.highs = triggersWrite ? abandonedWhileTriggersWrite(highs, state) : highs;
    if (!state.pending.length) state.pendingSince = Date.now();
    state.pending.push(kept);
    state.pendingRows += kept.rows.length;
  }
}

/**
 * Every transaction of the stream goes through the chunk windows (capture/watermark-windows.ts), in
 * commit order, rows the triggers wrote included (they changed the source all the same); returns
 * the windows its high watermarks closed.
 */
/**
 * What a source transaction changed, for the watermark windows (worked out only when a chunk needs
 * it). A class, not an object of arrow functions: one is made per source transaction, and under tsx
 * every closure made costs a naming call (esbuild's keepNames), which showed in profiles.
 */
class RowChanges implements TransactionChanges {
  constructor(private readonly rows: CapturedRow[]) {}
  keys(): string[] {
    const keys: string[] = [];
    for (const r of this.rows) {
      if (r.op === 'T') keys.push(truncateKey(r.tbl));
      else if (r.tbl === 'orders') keys.push(...orderLoadKeys(r));
      else keys.push(rowKey(r.tbl, r.key));
    }
    return keys;
  }
  orders(): CapturedRow[] {
    return this.rows.filter((r) => r.tbl === 'orders');
  }
}

function watermarks(t: CapturedTransaction, state: CaptureState): NonNullable<PendingTransaction['highs']> {
  state.windows.see(t.xid, new RowChanges(t.rows), Date.now(), t.rows.length > 0);
  // ticks bring the source's snapshot as they were written (the horizon), whoever wrote them
  for (const tick of t.ticks) if (tick.snapshot) state.windows.observe(tick.snapshot, Date.now());
  for (const snapshot of t.otherTickSnapshots ?? []) state.windows.observe(snapshot, Date.now());
  const highs: { chunk: string; window: ClosedWindow | null }[] = [];
  for (const w of t.watermarks ?? []) {
    // another source's chunk (two source settings naming one database): its capture writes it
    if (w.source !== undefined && w.source !== state.source.name) continue;
    if (w.edge === 'low') state.windows.low(w.chunk);
    else
      highs.push({
        chunk: w.chunk,
        ...(w.token !== undefined ? { token: w.token } : {}),
        window: state.windows.close(w.chunk),
      });
  }
  return highs;
}

/** Closed windows let go, each chunk abandoned (placeChunkRows: a high watermark with no window). */
function abandonedWhileTriggersWrite(
  highs: { chunk: string; window: ClosedWindow | null }[],
  state: CaptureState,
): { chunk: string; window: null }[] {
  for (const h of highs) if (h.window) state.windows.release(h.window);
  return highs.map((h) => ({ chunk: h.chunk, window: null }));
}

/** The rows of the chunks whose high watermarks the batch holds, placed at those watermarks. */
async function withChunkRows(
  pipeline: pg.Pool,
  batch: PendingTransaction[],
  state: CaptureState,
): Promise<{ batch: CapturedTransaction[]; chunks: ChunkOutcome }> {
  const outcome: ChunkOutcome = { written: [], abandoned: [] };
  const ids = batch.flatMap((t) => (t.highs ?? []).map((h) => h.chunk));
  if (!ids.length) return { batch, chunks: outcome };
  try {
    return { batch: await placeChunkRows(pipeline, batch, ids, state, outcome), chunks: outcome };
  } finally {
    // worked out or abandoned: the history the windows held may go (a failed write ends the session)
    for (const t of batch) for (const h of t.highs ?? []) if (h.window) state.windows.release(h.window);
  }
}

async function placeChunkRows(
  pipeline: pg.Pool,
  batch: PendingTransaction[],
  ids: string[],
  state: CaptureState,
  outcome: ChunkOutcome,
): Promise<CapturedTransaction[]> {
  const stored = await loadReadChunks(pipeline, ids);
  return batch.map((t) => {
    if (!t.highs) return t;
    const extra: CapturedRow[] = [];
    for (const h of t.highs) {
      const chunk = stored.get(h.chunk);
      // Another chunk's watermark: its id was handed out again (the pipeline database failed over
      // to a standby that lacked the chunk and its sequence's last value). Neither placed nor
      // abandoned here: the chunk with that id now is placed at its own watermarks.
      if (chunk && h.token !== undefined && chunk.token !== null && chunk.token !== h.token) continue;
      if (!h.window || !chunk) {
        outcome.abandoned.push(h.chunk);
        continue;
      }
      const rows = chunkRowsAt(state.windows, h.window, chunk);
      if (!rows) {
        outcome.abandoned.push(h.chunk);
        continue;
      }
      extra.push(...rows);
      outcome.written.push({ id: h.chunk, rows: rows.length });
    }
    return { ...t, rows: [...t.rows, ...extra] };
  });
}

/** A chunk's rows at its high watermark, or null when it must be read again. */
function chunkRowsAt(windows: WatermarkWindows, w: ClosedWindow, chunk: StoredChunk): CapturedRow[] | null {
  try {
    return rowsOfChunk(chunk, {
      excluded: windows.excluded(w, chunk.snapshot),
      unseenOrders: chunk.tbl === 'orders' ? windows.unseenOrders(w, chunk.snapshot) : [],
    });
  } catch (err) {
    if (err instanceof HistoryTooShortError) return null;
    throw err;
  }
}

async function flush(opts: CaptureRunOptions, stream: ReplicationStream, state: CaptureState): Promise<void> {
  const receivedAt = state.pendingSince || Date.now();
  const taken = state.pending;
  state.pending = [];
  state.pendingRows = 0;
  const switchDone = state.switchInBatch;
  state.switchInBatch = false;
  const { batch, chunks } = await withChunkRows(opts.pipeline, taken, state);
  faultPoint('capture-before-write');
  const result = await writeCapturedTransactions(opts.pipeline, state.source.name, batch, {
    written: state.writtenLsn,
    switchDone,
    chunks,
    generation: state.generation,
    tables: state.source.tables,
  });
  faultPoint('capture-after-write');
  if (result.publicationChanged)
    logger('capture').warn(
      `publication ${state.source.publication} of ${state.source.name} changed since the tick before (a table or schema shop dropped from it and added back, its operations, row filter or column list changed): changes made meanwhile may never have been published, so the store is emptied and refilled (docs/capture.md)`,
    );
  if (result.uncaptured) {
    logger('capture').warn(
      `${state.source.name}: ${result.uncaptured}: the change cannot be captured as it was made, so the store is emptied and refilled (docs/capture.md)`,
    );
    await state.recheckTables?.();
  }
  if (result.rows) announceOutboxWrite(); // a drain of this process waiting for rows goes now
  if (result.outboxTxid)
    recordCaptureWrite(result.outboxTxid, receivedAt, {
      'fresh_badges.source': state.source.name,
      'fresh_badges.source_transactions': result.transactions,
      'fresh_badges.rows': result.rows,
      'fresh_badges.lsn': formatLsn(result.lsn),
      'fresh_badges.outbox_txid': result.outboxTxid,
    });
  for (const t of batch)
    for (const tick of t.ticks) state.coveredAtMs = Math.max(state.coveredAtMs ?? tick.at, tick.at);
  state.transactions += result.transactions;
  state.rows += result.rows;
  state.writtenLsn = result.lsn;
  stream.confirm(result.lsn);
}

/**
 * The hand-over between the trigger capture and this one (capture/mode-switch.ts). Until the
 * marker of a switch to logical, the triggers wrote every change: such a transaction's rows are
 * dropped (its ticks still count). At a marker of a switch back to the triggers, this capture
 * writes up to it and stops.
 */
function handOver(t: CapturedTransaction, state: CaptureState): CapturedTransaction {
  const marker = t.switchMarker;
  if (state.switchId) {
    if (marker?.to === 'logical' && marker.id === state.switchId) {
      state.switchId = null;
      state.switchInBatch = true;
    }
    return t.rows.length ? { ...t, rows: [] } : t;
  }
  if (marker?.to === 'trigger') state.handedBack = true;
  return t;
}

/** A source's publication may hold more tables than this source owns (two settings naming one database): keep its own. */
function onlySourceTables(t: CapturedTransaction, source: CaptureSource): CapturedTransaction {
  if (t.rows.every((r) => source.tables.includes(r.tbl))) return t;
  return { ...t, rows: t.rows.filter((r) => source.tables.includes(r.tbl)) };
}

/**
 * Whether the run reads on: within its budget, not cancelled, and its session still of use (a
 * hand-back met, a source marked over a change it could not capture, or a lost tick connection
 * end the run early: the next one opens a new session).
 */
function runGoesOn(opts: CaptureRunOptions, state: CaptureState, stopAt: number): boolean {
  return (
    Date.now() < stopAt && !opts.signal?.aborted && !state.handedBack && !state.reopen && !state.tickConnection.lost
  );
}

/** Idle between transactions with a keepalive position past the slot's confirmed one (and allowed to confirm it). */
function idlePositionToConfirm(state: CaptureState, stream: ReplicationStream): boolean {
  return (
    !state.pending.length &&
    !state.assembler.inTransaction &&
    state.keepaliveLsn > stream.confirmedLsn &&
    (state.resend?.mayConfirm(state.keepaliveLsn) ?? true)
  );
}

/**
 * The session's ticks. A tick stuck, and the stream's server silent too when asked for a reply: the
 * host is gone without a reset, and the session ends like one whose tick connection was lost. A
 * server that answers is alive and its commit waits (for a synchronous standby, say): a new
 * session would only wait the same way, and leave the waiting backend behind on the source.
 */
function sessionTicker(opts: CaptureRunOptions, stream: ReplicationStream, admin: pg.Client, state: CaptureState) {
  return startTicker(admin, opts.pipeline, state.source, opts.tickMs, opts.log, async () => {
    if (await stream.answers(STREAM_ANSWER_MS)) return false;
    state.tickConnection.lost = true;
    return true;
  });
}

/** How long a stream asked for a reply may take to answer before its server counts as gone. */
const STREAM_ANSWER_MS = 5_000;

/** A tick with no answer after this long is stuck on a connection nothing answers on (startTicker). */
const TICK_STUCK_MS = 15_000;

/**
 * Writes a tick every `tickMs`, one at a time; a failed tick is logged (the stream will fail too if
 * the source is gone). A tick the publication's state kept from being written (emitTick) stops
 * the ticks: the source's gap is marked (retried with each check until it is), then check()
 * throws PublicationIncompleteError.
 */
function startTicker(
  admin: pg.Client,
  pipeline: pg.Pool,
  source: CaptureSource,
  tickMs: number,
  log: ((m: string) => void) | undefined,
  /** A tick had no answer for TICK_STUCK_MS: true when that ends the session. */
  onStuck: () => Promise<boolean>,
) {
  let inFlight: Promise<void> | null = null;
  let next = 0;
  let lastWarn = 0;
  let unpublished: string[] | null = null;
  let gap: PublicationIncompleteError | null = null;
  const warn = (what: string, err: Error) => {
    if (Date.now() - lastWarn > 5_000) log?.(`${what}: ${err.message}`);
    lastWarn = Date.now();
  };
  return {
    check() {
      if (gap) throw gap;
      if (inFlight) return;
      if (unpublished) {
        const missing = unpublished;
        inFlight = publicationGap(pipeline, source, missing)
          .then(
            (err) => void (gap = err),
            (err: Error) => warn('capture could not record the publication gap', err),
          )
          .finally(() => (inFlight = null));
        return;
      }
      if (Date.now() < next) return;
      next = Date.now() + tickMs;
      const tick = emitTick(admin, pipeline, source.slot, { name: source.publication, tables: source.tables }).then(
        (t) => void (unpublished = t.unpublished ?? null),
        (err: Error) => warn('capture tick failed', err),
      );
      // A source host gone without a reset (a failover behind a moved address, a partition) leaves
      // the tick waiting on a connection nothing answers on: the kernel gives up after about 15
      // minutes, and until then the run and its session would wait for it.
      inFlight = settlesWithin(tick, TICK_STUCK_MS)
        .then(async (settled) => {
          if (settled) return;
          const ends = await onStuck();
          logger('capture').warn(
            ends
              ? `capture tick of ${source.name} got no answer in ${TICK_STUCK_MS / 1000} s and the stream is silent too: the session ends and a new one connects`
              : `capture tick of ${source.name} got no answer in ${TICK_STUCK_MS / 1000} s while the stream still sends (its commit waits: a synchronous standby?): waiting on`,
          );
        })
        .finally(() => (inFlight = null));
    },
    async stop() {
      await inFlight;
    },
  };
}
