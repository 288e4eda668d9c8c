/**
 * The outbox side of capture from the WAL: writing captured source transactions into the outbox
 * together with the source's progress (pipeline.capture_progress, migration 011), in one
 * transaction, so the two never disagree after a crash.
 */
import type pg from 'pg';
import type { CapturedTransaction } from '../capture/transactions';
import { formatLsn, parseLsn } from '../capture/pgoutput';
import { keyColumnsOf } from '../capture/source-tables';
import { parseSnapshot } from '../db/pg-snapshot';
import { withTransaction } from '../db/transaction';
import { finishChunks } from './capture-chunks';
import { skuHash } from '../store/keys';
import { from as copyFrom } from 'pg-copy-streams';
import { CopyText } from './copy-text';
import type { LastCapturedTransaction } from '../capture/history-check';

export interface CaptureProgressRow {
  source: string;
  slot: string;
  lsn: bigint;
  coveredAtMs: number | null;
  rows: number;
  /** Set while the source hands over from the trigger capture (capture/mode-switch.ts). */
  switchId: string | null;
  /** When its slot was lost: reads stay stale until the store is refilled from it. */
  lostAtMs: number | null;
  /**
   * Every position confirmed to the slot since the last session took the source was recorded first
   * (migration 015: that session kept the rule, and no other took the source since): the slot is
   * never past `lsn`.
   */
  confirmsRecorded: boolean;
  /**
   * The last source transaction written, when it is the last one at or below `lsn` (migration 016;
   * null when unknown: none written yet, or a write of an older version moved `lsn` since).
   */
  lastTransaction: LastCapturedTransaction | null;
}

/**
 * A capture session that finds the source's progress row taken by a newer session (its generation
 * moved on: migration 014). It must stop: what it read may belong to a slot recorded as lost.
 */
export class CaptureFencedError extends Error {
  constructor(source: string, held: number, found: string) {
    super(
      `capture of ${source}: a newer capture session took the source over (generation ${found}, this session's ${held}); this one stops without writing`,
    );
    this.name = 'CaptureFencedError';
  }
}

/**
 * The recorded position went back behind what this session had written and confirmed: the
 * pipeline database lost capture writes (a failover to a standby behind it) while the session
 * lived. It must stop: the next session finds the slot past the recorded position and marks the
 * source lost (capture/capture-loop.ts), where writing on would cover the gap over.
 */
export class CaptureWritesLostError extends Error {
  constructor(source: string, recorded: bigint, written: bigint) {
    super(
      `capture of ${source}: the pipeline database records ${formatLsn(recorded)}, behind the ${formatLsn(written)} this session wrote: it lost capture writes (a failover?); the session stops`,
    );
    this.name = 'CaptureWritesLostError';
  }
}

/**
 * Takes the source for a session that has just started streaming it: the next generation, which
 * every write of the session checks (writeCapturedTransactions). Any older session's writes fail
 * from now on, so one that outlived its activity, or still holds a batch from a slot since lost,
 * cannot move the recorded position.
 *
 * From here on every position this session confirms to the slot is recorded first (migration
 * 015). `slotConfirmed`, the slot's position as the session found it, is recorded when the rule
 * did not hold up to now (an older version's session, which confirms idle positions without
 * recording them, took the source last). `slotCreatedAt`, the start of a slot the session has just
 * created, is recorded at least: nothing before it will ever be streamed, and a slot found past the
 * recorded position must always mean lost writes (capture-loop.ts, writesLostBefore).
 */
export async function claimCaptureSource(
  db: pg.Pool | pg.ClientBase,
  source: string,
  slotConfirmed: bigint | null = null,
  slotCreatedAt: bigint | null = null,
): Promise<number> {
  const r = await db.query<{ generation: string }>(
    `update pipeline.capture_progress
        set generation = generation + 1, confirms_recorded_by = generation + 1,
            lsn = greatest(case when confirms_recorded_by is not distinct from generation or $2::pg_lsn is null then lsn
                                else greatest(lsn, $2::pg_lsn) end,
                           coalesce($3::pg_lsn, '0/0'::pg_lsn)),
            -- the last transaction stands for the recorded position only while the rule held
            last_txn_for = case when confirms_recorded_by is not distinct from generation or $2::pg_lsn is null
                                then last_txn_for end
      where source = $1 returning generation::text`,
    [
      source,
      slotConfirmed === null ? null : formatLsn(slotConfirmed),
      slotCreatedAt === null ? null : formatLsn(slotCreatedAt),
    ],
  );
  if (!r.rowCount) throw new Error(`capture source ${source} is not registered (pipeline.capture_progress)`);
  return Number(r.rows[0]!.generation);
}

/** Registers a source (idempotent); its slot name is updated when it changed. */
export async function registerCaptureSource(db: pg.Pool | pg.ClientBase, source: string, slot: string): Promise<void> {
  await db.query(
    `insert into pipeline.capture_progress (source, slot) values ($1, $2)
     on conflict (source) do update set slot = excluded.slot`,
    [source, slot],
  );
}

export async function readCaptureProgress(
  db: pg.Pool | pg.ClientBase,
  source: string,
): Promise<CaptureProgressRow | null> {
  const r = await db.query<{
    source: string;
    slot: string;
    lsn: string;
    covered_ms: number | null;
    rows: string;
    switch_id: string | null;
    lost_ms: number | null;
    confirms_recorded: boolean;
    last_lsn: string | null;
    last_xid: string | null;
    last_commit_ms: number | null;
  }>(
    `select source, slot, lsn::text as lsn, (extract(epoch from covered_at) * 1000)::float8 as covered_ms, rows, switch_id,
            (extract(epoch from lost_at) * 1000)::float8 as lost_ms,
            confirms_recorded_by is not distinct from generation as confirms_recorded,
            case when last_txn_for = lsn then last_txn_lsn::text end as last_lsn,
            last_txn_xid::text as last_xid, last_txn_commit_ms as last_commit_ms
       from pipeline.capture_progress where source = $1`,
    [source],
  );
  const row = r.rows[0];
  return row
    ? {
        source: row.source,
        slot: row.slot,
        lsn: parseLsn(row.lsn),
        coveredAtMs: row.covered_ms,
        rows: Number(row.rows),
        switchId: row.switch_id,
        lostAtMs: row.lost_ms,
        confirmsRecorded: row.confirms_recorded,
        lastTransaction:
          row.last_lsn !== null && row.last_xid !== null && row.last_commit_ms !== null
            ? { endLsn: parseLsn(row.last_lsn), xid: Number(row.last_xid), commitMs: row.last_commit_ms }
            : null,
      }
    : null;
}

/**
 * Records an idle position (a keepalive's: every transaction before it is written) before the
 * session confirms it to the slot, so the slot is never past what the pipeline database recorded
 * (claimCaptureSource). Fails if a newer session took the source.
 */
export async function recordIdlePosition(
  db: pg.Pool,
  source: string,
  lsn: bigint,
  generation: number | undefined,
  /** What the session wrote: a recorded position behind it is CaptureWritesLostError. */
  written = 0n,
): Promise<void> {
  const r = await db.query<{ generation: string | null; recorded: string | null; moved: number }>(
    `with prog as (select generation, lsn from pipeline.capture_progress where source = $1),
          moved as (
            update pipeline.capture_progress
               set lsn = greatest(lsn, $2::pg_lsn),
                   last_txn_for = case when last_txn_for = lsn then greatest(lsn, $2::pg_lsn) end
             where source = $1 and ($3::bigint is null or generation = $3::bigint) and lsn >= $4::pg_lsn
            returning 1)
     select (select generation::text from prog) as generation, (select lsn::text from prog) as recorded,
            (select count(*) from moved)::int as moved`,
    [source, formatLsn(lsn), generation ?? null, formatLsn(written)],
  );
  const row = r.rows[0]!;
  if (row.moved) return;
  if (generation !== undefined && row.generation !== null && row.generation !== String(generation))
    throw new CaptureFencedError(source, generation, row.generation);
  if (row.recorded !== null && parseLsn(row.recorded) < written)
    throw new CaptureWritesLostError(source, parseLsn(row.recorded), written);
  throw new CaptureFencedError(source, generation ?? -1, row.generation ?? 'none');
}

/** What became of the chunks whose high watermarks a batch met (capture/watermark-read.ts). */
export interface ChunkOutcome {
  written: { id: string; rows: number }[];
  abandoned: string[];
}

export interface WriteResult {
  /** Source transactions written now (those at or below the recorded position were written before). */
  transactions: number;
  rows: number;
  /** The source's position after the write: confirm the slot up to here. */
  lsn: bigint;
  /** The outbox transaction that holds the rows (its trace: tracing/change-trace.ts); none when nothing was written. */
  outboxTxid?: string;
  /** The publication changed since the tick before (its fingerprint): the write marked the source lost. */
  publicationChanged?: boolean;
  /** Changes the stream sent that could not be captured (CapturedTransaction.uncaptured): the write marked the source lost. */
  uncaptured?: string;
}

export interface WriteOptions {
  /** The session's generation (claimCaptureSource): the write fails if a newer session took the source. */
  generation?: number;
  /** The batch holds the hand-over marker: from now on the triggers write nothing. */
  switchDone?: boolean;
  /** What the session wrote before: a recorded position behind it is CaptureWritesLostError. */
  written?: bigint;
  /** Chunks read between watermarks whose rows the batch holds, or that were abandoned. */
  chunks?: ChunkOutcome;
  /**
   * The source's tables: a tick whose publication fingerprint is not the one recorded before it
   * marks the source lost (a TRUNCATE row for each) in the write. Without them, fingerprints are
   * only recorded.
   */
  tables?: readonly string[];
}

/**
 * Writes the transactions (in commit order) into the outbox and moves the source's progress to the
 * last one, in one transaction. The progress row is locked first: a second capture of the same
 * source (a stale run) waits, then skips what this one wrote. Transactions ending at or below the
 * recorded position were written by an earlier run whose slot confirmation did not happen (a crash
 * between the commit and the confirmation): they are skipped, so nothing is written twice.
 */
export async function writeCapturedTransactions(
  pipeline: pg.Pool,
  source: string,
  transactions: CapturedTransaction[],
  opts: WriteOptions = {},
): Promise<WriteResult> {
  const rowCount = transactions.reduce((n, t) => n + t.rows.length, 0);
  const fps = tickFingerprints(transactions, 'publication');
  const tableFps = tickFingerprints(transactions, 'tables');
  const plain =
    !opts.switchDone &&
    !opts.chunks?.written.length &&
    !opts.chunks?.abandoned.length &&
    new Set(fps).size <= 1 &&
    new Set(tableFps).size <= 1 &&
    !transactions.some((t) => t.uncaptured);
  if (plain && transactions.length && rowCount <= ONE_STATEMENT_MAX_ROWS) {
    const written = await writeInOneStatement(
      pipeline,
      source,
      transactions,
      rowCount,
      opts.generation,
      opts.written ?? 0n,
      fps[0] ?? null,
      tableFps[0] ?? null,
    );
    if (written) return written;
  }
  return withTransaction(pipeline, (client) => writeInTransaction(client, source, transactions, opts));
}

/**
 * SQL: covered_at moved to the newest tick of a write (ms since the epoch, or null: it stays), never
 * back. Ticks carry this database's clock (capture/ticks.ts), so neither a tick nor a recorded
 * covered_at can be later than this statement's start while that clock only goes forward. One that
 * is was stamped before the clock went back (NTP stepped it, or the database failed over to a
 * server whose clock is behind): it is dropped, not kept, since kept it would claim coverage of a
 * time that has not come yet, and reads would stay fresh for that long after capture stopped. With
 * nothing left, covered_at is null: reads stale (capturedThroughSql) until the next tick.
 */
const COVERED_AT_SQL = (param: string) =>
  `greatest(case when covered_at <= statement_timestamp() then covered_at end,
            case when to_timestamp(${param}::float8 / 1000) <= statement_timestamp() then to_timestamp(${param}::float8 / 1000) end)`;

/** writeCapturedTransactions' general path, in the caller's transaction. */
async function writeInTransaction(
  client: pg.PoolClient,
  source: string,
  transactions: CapturedTransaction[],
  opts: WriteOptions,
): Promise<WriteResult> {
  const at = await client.query<{ lsn: string; generation: string; fp: string | null; tablesFp: string | null }>(
    `select lsn::text as lsn, generation::text, publication_fp as fp, tables_fp as "tablesFp"
       from pipeline.capture_progress where source = $1 for update`,
    [source],
  );
  if (!at.rowCount) throw new Error(`capture source ${source} is not registered (pipeline.capture_progress)`);
  if (opts.generation !== undefined && at.rows[0]!.generation !== String(opts.generation))
    throw new CaptureFencedError(source, opts.generation, at.rows[0]!.generation);
  const done = parseLsn(at.rows[0]!.lsn);
  if (opts.written !== undefined && done < opts.written) throw new CaptureWritesLostError(source, done, opts.written);
  const fresh = transactions.filter((t) => t.endLsn > done);
  if (!fresh.length) return { transactions: 0, rows: 0, lsn: done };

  const covered = newestTick(fresh);
  const rows = fresh.reduce((n, t) => n + t.rows.length, 0);
  if (rows) await copyIntoOutbox(client, fresh);
  if (opts.chunks) await finishChunks(client, opts.chunks);
  const publication = publicationSince(at.rows[0]!.fp, tickFingerprints(fresh, 'publication'));
  const identities = publicationSince(at.rows[0]!.tablesFp, tickFingerprints(fresh, 'tables'));
  // Changes the stream sent that could not be captured are a gap too: the source is refilled.
  const uncaptured = fresh.find((t) => t.uncaptured)?.uncaptured;
  const changed = (publication.changed || identities.changed || uncaptured !== undefined) && opts.tables !== undefined;
  // the refill waits for the transactions in progress as the change was found (gap_xmax)
  const foundIn = changed ? newestTickSnapshot(fresh) : undefined;
  // After the rows: the store is emptied once they are applied, and refilled from a read of now.
  if (changed) await insertTruncates(client, opts.tables!);
  const last = fresh[fresh.length - 1]!;
  const lsn = last.endLsn;
  const moved = await client.query<{ txid: string }>(
    `update pipeline.capture_progress
        set lsn = $2::pg_lsn, rows = rows + $3,
            covered_at = ${COVERED_AT_SQL('$4')}, updated_at = now(),
            switch_id = case when $5 then null else switch_id end,
            ${LAST_TRANSACTION_SQL('$2', '$6', '$7')},
            publication_fp = $8, tables_fp = $11,
            lost_at = case when $9 then now() else lost_at end,
            refill_from = case when $9 then null else refill_from end,
            gap_at = case when $9 then null else gap_at end,
            gap_xmax = case when $9 then $10 else gap_xmax end
      where source = $1
     returning pg_current_xact_id()::text as txid`,
    [
      source,
      formatLsn(lsn),
      rows,
      covered,
      !!opts.switchDone,
      last.xid,
      last.commitMs,
      publication.fp,
      changed,
      foundIn ? parseSnapshot(foundIn).xmax.toString() : null,
      identities.fp,
    ],
  );
  return {
    transactions: fresh.length,
    rows,
    lsn,
    ...(rows ? { outboxTxid: moved.rows[0]!.txid } : {}),
    ...(changed && (publication.changed || identities.changed) ? { publicationChanged: true } : {}),
    ...(changed && uncaptured ? { uncaptured } : {}),
  };
}

/**
 * The fingerprints of one kind the transactions' ticks carry, in stream order (capture/ticks.ts):
 * the publication's, or the contract tables' identities.
 */
function tickFingerprints(transactions: CapturedTransaction[], kind: 'publication' | 'tables'): string[] {
  const fps: string[] = [];
  for (const t of transactions) for (const tick of t.ticks) if (tick[kind]) fps.push(tick[kind]);
  return fps;
}

/**
 * The fingerprint to record after ticks carrying `fps` (in stream order), the one recorded being
 * `recorded`, and whether the publication (or the tables' identities) changed between two ticks:
 * one fingerprint not the one before it. Nothing recorded yet (a new source, an older version's
 * writes, a slot lost since) compares with nothing.
 */
export function publicationSince(recorded: string | null, fps: string[]): { fp: string | null; changed: boolean } {
  let fp = recorded;
  let changed = false;
  for (const f of fps) {
    if (fp !== null && f !== fp) changed = true;
    fp = f;
  }
  return { fp, changed };
}

/** The source snapshot of the last tick the transactions carry that has one. */
function newestTickSnapshot(transactions: CapturedTransaction[]): string | undefined {
  let snapshot: string | undefined;
  for (const t of transactions) for (const tick of t.ticks) if (tick.snapshot) snapshot = tick.snapshot;
  return snapshot;
}

/** The newest tick the transactions carry (ms since the epoch): what the write records as covered. */
function newestTick(transactions: CapturedTransaction[]): number | null {
  let covered: number | null = null;
  for (const t of transactions) for (const tick of t.ticks) covered = Math.max(covered ?? tick.at, tick.at);
  return covered;
}

/**
 * SQL: the last transaction of a write, recorded with the position it moves to (migration 016:
 * the capture checks it is sent again when it resumes behind that position, capture/history-check.ts).
 */
const LAST_TRANSACTION_SQL = (lsn: string, xid: string, commitMs: string) =>
  `last_txn_lsn = ${lsn}::pg_lsn, last_txn_xid = ${xid}::bigint, last_txn_commit_ms = ${commitMs}::float8, last_txn_for = ${lsn}::pg_lsn`;

/** Up to this many rows a write is one statement (one round trip); more go by COPY. */
const ONE_STATEMENT_MAX_ROWS = 2_000;
/** The partition count the last write of each pipeline database routed with (checked by the next). */
const routedWith = new WeakMap<pg.Pool, number>();

/**
 * The common write of a steady stream (a few source transactions, none written before, no chunk or
 * hand-over) as one statement, so one round trip and one implicit transaction: it locks the progress
 * row and the layout as the transaction of writeCapturedTransactions does, and writes only if the
 * recorded position is before the first transaction (nothing of it was written before), the
 * partition count is the one the routes were computed with and the session's generation is still
 * the row's. Otherwise it writes nothing and returns null: the caller takes the general path (which
 * reports a fenced session). Rows take outbox ids in array order (ORDER BY the
 * ordinality), the order the server sent them.
 */
async function writeInOneStatement(
  pipeline: pg.Pool,
  source: string,
  transactions: CapturedTransaction[],
  rowCount: number,
  generation: number | undefined,
  written: bigint,
  /** The one publication fingerprint the ticks carry, if any: the write goes on only if it is the one recorded. */
  fp: string | null,
  /** The same of the tables' identities (TABLES_FINGERPRINT_SQL). */
  tablesFp: string | null,
): Promise<WriteResult | null> {
  const partitions = routedWith.get(pipeline) ?? 1;
  // The rows as one JSON array of [tbl, op, key, image, old image, route]: the images are JSON text
  // already and go in as they are (a text[] parameter would escape every one of them again).
  const parts: string[] = [];
  const covered = newestTick(transactions);
  for (const t of transactions) {
    for (const r of t.rows)
      parts.push(
        // tbl and op are names of our own (capture/row-image.ts): quoted as they are
        `["${r.tbl}","${r.op}",${JSON.stringify(r.key)},${r.image ?? 'null'},${r.oldImage ?? 'null'},${routeOf(r, partitions)}]`,
      );
  }
  const last = transactions[transactions.length - 1]!;
  const lsn = last.endLsn;
  const r = await pipeline.query<{ written: number; done: string | null; partitions: number; txid: string }>(
    `with prog as (
       select lsn, generation, publication_fp, tables_fp from pipeline.capture_progress where source = $1 for update
     ), layout as (
       select partitions from pipeline.drain_layout for share
     ), go as (
       select 1 from prog
        where prog.lsn < $2::pg_lsn and prog.lsn >= $9::pg_lsn and coalesce((select partitions from layout), 1) = $3
          and ($8::bigint is null or prog.generation = $8::bigint)
          and ($12::text is null or prog.publication_fp = $12::text)
          and ($13::text is null or prog.tables_fp = $13::text)
     ), ins as (
       insert into pipeline.outbox (tbl, op, key, image, old_image, route)
       select r->>0, r->>1, r->>2,
              case when json_typeof(r->3) = 'null' then null else r->3 end,
              case when json_typeof(r->4) = 'null' then null else r->4 end, (r->>5)::int
         from json_array_elements($4::json) with ordinality as u(r, n)
        where exists (select 1 from go)
        order by u.n
     ), upd as (
       update pipeline.capture_progress
          set lsn = $5::pg_lsn, rows = rows + $6,
              covered_at = ${COVERED_AT_SQL('$7')}, updated_at = now(),
              ${LAST_TRANSACTION_SQL('$5', '$10', '$11')}
        where source = $1 and exists (select 1 from go)
       returning 1
     )
     select (select count(*) from upd)::int as written, (select lsn::text from prog) as done,
            coalesce((select partitions from layout), 1) as partitions, pg_current_xact_id()::text as txid`,
    [
      source,
      formatLsn(transactions[0]!.endLsn),
      partitions,
      `[${parts.join(',')}]`,
      formatLsn(lsn),
      rowCount,
      covered,
      generation ?? null,
      formatLsn(written),
      last.xid,
      last.commitMs,
      fp,
      tablesFp,
    ],
  );
  const row = r.rows[0]!;
  if (row.done === null) throw new Error(`capture source ${source} is not registered (pipeline.capture_progress)`);
  routedWith.set(pipeline, row.partitions);
  if (!row.written) return null;
  return { transactions: transactions.length, rows: rowCount, lsn, ...(rowCount ? { outboxTxid: row.txid } : {}) };
}

/**
 * SQL: the time up to which every source's committed changes are in the outbox, or null when no
 * source captures from the WAL (the trigger capture writes the outbox in the source's own
 * transaction). Each source counts as the epoch (reads stale) while it:
 *  - has no tick yet, or its slot was lost (lost_at);
 *  - records a coverage later than this database's clock now: impossible while the clock only goes
 *    forward (a tick is recorded before the commit this statement's snapshot sees), so the clock
 *    went back (stepped by NTP, or a failover to a server whose clock is behind). Taken as it
 *    stands, `least(now, covered_at)` would be now, whatever capture has covered since, until
 *    the clock caught up; the capture's next tick replaces it (COVERED_AT_SQL).
 * `logical` (CAPTURE_MODE=logical): a pipeline database that records no source yet is the epoch,
 * not "no source captures from the WAL": the sources are recorded by the first capture that
 * connects (outbox/capture-layout.ts), and until then nothing of theirs is in the outbox.
 */
export const capturedThroughSql = (logical: boolean): string => {
  const each = `case when lost_at is null and covered_at <= clock_timestamp() then covered_at else 'epoch'::timestamptz end`;
  const all = logical ? `coalesce(min(${each}), 'epoch'::timestamptz)` : `min(${each})`;
  return `(select ${all} from pipeline.capture_progress)`;
};

/** Marks the source as handing over from the trigger capture at the marker `id` (capture/mode-switch.ts). */
export async function setCaptureSwitch(db: pg.Pool | pg.ClientBase, source: string, id: string | null): Promise<void> {
  await db.query(`update pipeline.capture_progress set switch_id = $2 where source = $1`, [source, id]);
}

/**
 * The source's slot was lost (dropped, invalidated, or gone with a failover): the changes between
 * its last confirmed position and the new slot are missing, and so, for rows deleted meanwhile,
 * is any trace of them. In one transaction:
 *  - lost_at: reads stay stale until a refill that began after it is done (a second loss moves
 *    it on, and forgets a refill already under way: that one began before it);
 *  - a TRUNCATE row for each of the source's tables: the drain empties the store and refills it
 *    from the sources (activities/drain/truncates.ts), as after a captured TRUNCATE, so a row
 *    deleted while the slot was gone does not stay in the store (a refill of the rows the source
 *    still has would leave it there, then answer fresh);
 *  - the recorded position belongs to the old slot (after a failover, to another server's WAL):
 *    it starts again from the new slot's;
 *  - the generation moves on (migration 014): a session still holding a batch of the old slot
 *    cannot write it from now on, even before the new session takes the source.
 * Called before the new slot is created, so a crash in between finds the slot still missing and
 * marks it again (one more refill), never forgets it.
 */
export async function markSourceLost(
  db: pg.Pool,
  source: string,
  tables: readonly string[],
  /** Only if the source is still at this generation (a session's own finding): else nothing is done. */
  generation?: number,
): Promise<boolean> {
  return withTransaction(db, (c) => markSourceLostIn(c, source, tables, generation));
}

/** markSourceLost's writes, in the caller's transaction. */
export async function markSourceLostIn(
  c: pg.ClientBase,
  source: string,
  tables: readonly string[],
  generation?: number,
): Promise<boolean> {
  const marked = await c.query(
    `update pipeline.capture_progress
        set lost_at = now(), refill_from = null, lsn = '0/0', generation = generation + 1,
            last_txn_lsn = null, last_txn_xid = null, last_txn_commit_ms = null, last_txn_for = null
      where source = $1 and ($2::bigint is null or generation = $2::bigint)`,
    [source, generation ?? null],
  );
  if (generation !== undefined && !marked.rowCount) return false;
  await insertTruncates(c, tables);
  return true;
}

/** A TRUNCATE row for each table, in order: the drain empties the store and refills it (activities/drain/truncates.ts). */
async function insertTruncates(c: pg.ClientBase, tables: readonly string[]): Promise<void> {
  await c.query(
    `insert into pipeline.outbox (tbl, op, key, image, old_image, route)
     select t, 'T', '', null, null, -1 from unnest($1::text[]) with ordinality as u(t, n) order by n`,
    [tables],
  );
}

/**
 * The source's publication left out some of its tables' changes (capture/slot.ts,
 * UNPUBLISHED_TABLES_SQL): the stream never sends those made meanwhile, even once it is mended
 * (pgoutput judges each change by the catalog of its time). As for a lost slot, in one
 * transaction: lost_at, and a TRUNCATE row for each of the source's tables (the store emptied and
 * refilled, reads stale until then); the slot and the recorded position stay, as the stream
 * itself lost nothing. Not again while the source's loss is still this mark (gap_at, migration
 * 020): capture is refused every 30 s until the publication is mended, and the refill the mark
 * asked for, begun after it, covers the gap (its reads of this source wait for capture); marking
 * again would empty the store again each time. A loss of another kind since, or one a refill has
 * cleared, is marked again: a refill begun before the gap could end without it. True when it marked.
 */
export async function markPublicationGap(db: pg.Pool, source: string, tables: readonly string[]): Promise<boolean> {
  return withTransaction(db, async (c) => {
    const marked = await c.query(
      `update pipeline.capture_progress set lost_at = now(), refill_from = null, gap_at = now()
        where source = $1 and (lost_at is null or gap_at is null or lost_at <> gap_at)`,
      [source],
    );
    if (!marked.rowCount) return false;
    await insertTruncates(c, tables);
    return true;
  });
}

/** Moves the source's generation on: every capture session that took it before writes nothing more. */
export async function fenceCaptureSessions(db: pg.Pool | pg.ClientBase, source: string): Promise<void> {
  await db.query(`update pipeline.capture_progress set generation = generation + 1 where source = $1`, [source]);
}

/**
 * Before a source's slot is dropped on purpose (the triggers took over): its row no longer claims a
 * position or a coverage, so a row left behind by a crash before forgetCaptureSource is not taken
 * for a lost slot, or for lost writes, by a later capture from the WAL (its new slot starts past it).
 * The generation moves on: a capture session that took the source before (one a hand-back could
 * not stop) writes nothing from here on.
 */
export async function releaseCaptureSource(db: pg.Pool | pg.ClientBase, source: string): Promise<void> {
  await db.query(
    `update pipeline.capture_progress
        set lsn = '0/0', covered_at = null, confirms_recorded_by = null, generation = generation + 1,
            last_txn_lsn = null, last_txn_xid = null, last_txn_commit_ms = null, last_txn_for = null
      where source = $1`,
    [source],
  );
}

/** Forgets a source (its capture ended: the trigger capture took over, or the source left the configuration). */
export async function forgetCaptureSource(db: pg.Pool | pg.ClientBase, source: string): Promise<void> {
  await db.query(`delete from pipeline.capture_progress where source = $1`, [source]);
}

/** A value in COPY's text format: backslash, tab, newline and carriage return escaped; null as \N. */
/**
 * The rows of the transactions, in commit order, by COPY (about twice as fast as an INSERT of
 * arrays): the identity column hands out ids in the order the rows arrive, so for one source row
 * the outbox ids follow the order of its changes.
 */
const COPY_PIECE_BYTES = 8 << 20;

async function copyIntoOutbox(client: pg.PoolClient, transactions: CapturedTransaction[]): Promise<void> {
  // The partition count routes are computed with, held (FOR SHARE) until this transaction ends, as
  // the routing trigger would read it (outbox/shards.ts).
  const layout = await client.query<{ partitions: number }>(`select partitions from pipeline.drain_layout for share`);
  const partitions = layout.rows[0]?.partitions ?? 1;
  let rows = 0;
  for (const t of transactions) rows += t.rows.length;
  const text = new CopyText(Math.min(rows * 320, 64 << 20)); // a first guess; it grows
  for (const t of transactions)
    for (const r of t.rows) {
      // tbl and op are names of our own (capture/row-image.ts): nothing in them needs escaping
      text.plain(r.tbl);
      text.tab();
      text.plain(r.op);
      text.tab();
      text.field(r.key);
      text.tab();
      text.field(r.image);
      text.tab();
      text.field(r.oldImage);
      text.tab();
      text.plain(String(routeOf(r, partitions)));
      text.endRow();
    }
  // One write of the whole batch: the server reads it while capture decodes the next batch (a
  // stream of small chunks would move only when capture's event loop is free).
  const copy = client.query(copyFrom('copy pipeline.outbox (tbl, op, key, image, old_image, route) from stdin'));
  await new Promise<void>((resolve, reject) => {
    copy.on('finish', resolve);
    copy.on('error', reject);
    // in pieces: one CopyData message per piece, each well under the server's limit on a message
    const bytes = text.view();
    for (let at = 0; at < bytes.length; at += COPY_PIECE_BYTES) copy.write(bytes.subarray(at, at + COPY_PIECE_BYTES));
    copy.end();
  });
}

/**
 * A row's drain route (migration 008): the store partition of the SKU a skus or inventory row
 * writes, -1 (every shard) for the rest and for TRUNCATEs; the same as pipeline.sku_route.
 */
export function routeOf(
  r: { tbl: string; op: string; key: string; image?: string | null },
  partitions: number,
): number {
  if (r.op === 'T' || (r.tbl !== 'skus' && r.tbl !== 'inventory')) return -1;
  if (partitions <= 1) return 0;
  return skuHash(r.tbl === 'skus' ? r.key : inventorySku(r)) % partitions;
}

/**
 * The SKU of an inventory row: its key's part before the '|' ("sku|fc"), or, when the key holds
 * more than one '|' (an id holding it), its image's sku_id, as the routing trigger takes it.
 */
function inventorySku(r: { key: string; image?: string | null }): string {
  const columns = keyColumnsOf('inventory', r.key);
  if (columns) return columns[0]!;
  const sku = r.image ? (JSON.parse(r.image) as { sku_id?: unknown }).sku_id : undefined;
  return typeof sku === 'string' ? sku : r.key.split('|')[0]!;
}
