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
import { readCaptureProgress, registerCaptureSource, writeCapturedTransactions } from '../outbox/capture-progress';
import { formatLsn, pgTimeToMs } from './pgoutput';
import { ReplicationStream } from './replication-stream';
import { emitTick } from './ticks';
import { TransactionAssembler, type CapturedTransaction } from './transactions';
import type { CaptureSource } from './sources';
import { ensureSlot } from './slot';
import { faultPoint } from '../activities/drain/fault-injection';

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
}

export async function runCapture(opts: CaptureRunOptions): Promise<CaptureProgress> {
  const { source, pipeline } = opts;
  const admin = new pg.Client({ connectionString: source.url, application_name: 'fresh-badges-capture-ticks' });
  admin.on('error', () => {}); // a failed tick query reports it
  await admin.connect();
  let stream: ReplicationStream | null = null;
  try {
    const slotCreated = await ensureSlot(admin, source.slot);
    await registerCaptureSource(pipeline, source.name, source.slot);
    stream = await ReplicationStream.start({
      connectionString: source.url,
      slot: source.slot,
      publication: source.publication,
    });
    const recorded = await readCaptureProgress(pipeline, source.name);
    const state = new CaptureState(source, recorded?.lsn ?? 0n, slotCreated, recorded?.coveredAtMs ?? null);
    await captureUntilDone(opts, stream, admin, state);
    return state.progress();
  } finally {
    await stream?.close();
    await admin.end().catch(() => {});
  }
}

class CaptureState {
  readonly assembler = new TransactionAssembler();
  pending: CapturedTransaction[] = [];
  pendingRows = 0;
  /** The last keepalive's position: everything the server sent before it has been read. */
  keepaliveLsn = 0n;
  transactions = 0;
  rows = 0;
  constructor(
    readonly source: CaptureSource,
    public writtenLsn: bigint,
    readonly slotCreated: boolean,
    public coveredAtMs: number | null,
  ) {}

  progress(): CaptureProgress {
    return {
      source: this.source.name,
      lsn: lsnText(this.writtenLsn),
      transactions: this.transactions,
      rows: this.rows,
      coveredAtMs: this.coveredAtMs,
      slotCreated: this.slotCreated,
    };
  }
}

const lsnText = formatLsn;

async function captureUntilDone(
  opts: CaptureRunOptions,
  stream: ReplicationStream,
  admin: pg.Client,
  state: CaptureState,
): Promise<void> {
  const stopAt = opts.budgetMs ? Date.now() + opts.budgetMs : Infinity;
  const maxRows = opts.maxBatchRows ?? 20_000;
  const ticker = startTicker(admin, opts.tickMs, opts.log);
  let lastReport = 0;
  try {
    while (Date.now() < stopAt && !opts.signal?.aborted) {
      ticker.check();
      const frames = await stream.take(5_000, state.pending.length ? 0 : Math.min(opts.tickMs, 50));
      for (const frame of frames) {
        if (frame.kind === 'keepalive') {
          state.keepaliveLsn = frame.walEnd;
          continue;
        }
        const msg = frame.message;
        const done = state.assembler.push(msg);
        if (msg.kind === 'begin') state.assembler.noteCommitTime(pgTimeToMs(msg.commitTimeUs));
        if (done && done.endLsn > state.writtenLsn) {
          state.pending.push(onlySourceTables(done, state.source));
          state.pendingRows += done.rows.length;
        }
      }
      // Write when the stream has nothing more ready (low latency) or the batch is big.
      if (state.pending.length && (frames.length < 5_000 || state.pendingRows >= maxRows)) {
        await flush(opts, stream, state);
        opts.onProgress?.(state.progress());
        lastReport = Date.now();
      } else if (!state.pending.length && !state.assembler.inTransaction && state.keepaliveLsn > stream.confirmedLsn) {
        // Idle: every transaction the server sent before its keepalive is written; the slot may
        // move up to it (so it does not keep WAL of other databases' or unpublished tables' work).
        stream.confirm(state.keepaliveLsn);
      }
      if (Date.now() - lastReport >= 1_000) {
        opts.onProgress?.(state.progress());
        lastReport = Date.now();
      }
    }
    if (state.pending.length) await flush(opts, stream, state);
  } finally {
    await ticker.stop();
  }
}

async function flush(opts: CaptureRunOptions, stream: ReplicationStream, state: CaptureState): Promise<void> {
  const batch = state.pending;
  faultPoint('capture-before-write');
  const result = await writeCapturedTransactions(opts.pipeline, state.source.name, batch);
  faultPoint('capture-after-write');
  for (const t of batch)
    for (const tick of t.ticks) state.coveredAtMs = Math.max(state.coveredAtMs ?? tick.at, tick.at);
  state.pending = [];
  state.pendingRows = 0;
  state.transactions += result.transactions;
  state.rows += result.rows;
  state.writtenLsn = result.lsn;
  stream.confirm(result.lsn);
}

/** A source's publication may hold more tables than this source owns (two settings naming one database): keep its own. */
function onlySourceTables(t: CapturedTransaction, source: CaptureSource): CapturedTransaction {
  if (t.rows.every((r) => source.tables.includes(r.tbl))) return t;
  return { ...t, rows: t.rows.filter((r) => source.tables.includes(r.tbl)) };
}

/** Writes a tick every `tickMs`, one at a time; a failed tick is logged (the stream will fail too if the source is gone). */
function startTicker(admin: pg.Client, tickMs: number, log?: (m: string) => void) {
  let inFlight: Promise<void> | null = null;
  let next = 0;
  let lastWarn = 0;
  return {
    check() {
      if (inFlight || Date.now() < next) return;
      next = Date.now() + tickMs;
      inFlight = emitTick(admin)
        .then(
          () => undefined,
          (err: Error) => {
            if (Date.now() - lastWarn > 5_000) log?.(`capture tick failed: ${err.message}`);
            lastWarn = Date.now();
          },
        )
        .finally(() => (inFlight = null));
    },
    async stop() {
      await inFlight;
    },
  };
}
