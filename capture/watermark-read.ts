/**
 * Reading source rows into the outbox without writing into the source (repairs, a SKU's rebuild,
 * backfill, verify: docs/capture.md). The rows are read between a low and a high watermark written
 * into the source's WAL (`pg_logical_emit_message`: no table, no row), and the source's capture
 * writes them into the outbox at the high watermark, minus the keys the stream changed meanwhile
 * (capture/watermark-windows.ts says why that never lets an older image win). The rows are read
 * from the replica when there is one, once it has replayed past the low watermark.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { createChunk, storeChunkRead, type ReadRow } from '../outbox/capture-chunks';
import { primaryWalLsn, ReplicaNotFollowingError, waitForReplay } from './replica';
import { logger } from '../log/logger';
import { redactText } from '../config/redact';
import type { CaptureSource } from './sources';
import { keyColumnsOf, SOURCE_TABLES, type SourceTable } from './source-tables';
import { encodeWatermark, TICK_PREFIX } from './ticks';
import { PIN_MAX_MS } from './watermark-windows';
import { dayStartIso, WINDOW_LOADS_SQL } from '../features/definitions';

export interface WatermarkReadOptions {
  /** Rows are read from its replica when it has one (after the replica has replayed the low watermark), else from it. */
  source: CaptureSource;
  pipeline: pg.Pool;
  /** How long the capture may stay where it is while a chunk waits for it (then CaptureNotRunningError; default 60 s). */
  timeoutMs?: number;
}

export interface ChunkRead {
  tbl: SourceTable;
  /** Outbox keys ('sku', 'sku|fc', 'fc', 'region|fc'); or a range of the table in key order. */
  keys?: string[];
  /**
   * A range: the rows after the key whose columns are `after` (null: from the start), at most
   * `limit`. Columns, not an outbox key: an id may itself hold '|'.
   */
  range?: { after: string[] | null; limit: number };
  /** Inventory only: every row of this SKU. */
  ofSku?: string;
  /**
   * Orders only: every FC's load of each day from `fromDay` (yyyymmdd) on, as the rule counts it;
   * `alsoZero` ("fc|yyyymmdd") are loads the store holds, set to 0 when the source has none.
   */
  loads?: { fromDay: string; alsoZero?: string[] };
  /** A key asked for that the source does not have becomes a delete. */
  deleteAbsent?: boolean;
}

export interface ChunkWritten {
  /** Rows read from the source. */
  read: number;
  /** Outbox rows written for them (refreshes and deletes; fewer when the stream changed some meanwhile). */
  written: number;
  /** The last key read, null when none. */
  lastKey: string | null;
  /** The last row's key columns (a range's next `after`), null when none. */
  lastColumns: string[] | null;
}

export class CaptureNotRunningError extends Error {
  override name = 'CaptureNotRunningError';
}

/**
 * A chunk the capture has not written within the wait its caller can afford (`waitMs`): the capture
 * is behind. The chunk stays handed over; a later call waits on it again (awaitChunk), reading nothing again.
 */
export class ChunkNotWrittenYetError extends Error {
  override name = 'ChunkNotWrittenYetError';
}

/**
 * A chunk read and handed to its source's capture: its high watermark is in the source's WAL, in a
 * transaction committed before `highLsn` (the WAL insert position after it).
 */
export interface HandedChunk {
  id: string;
  highLsn: string;
}

/** How a wait for the capture ends without a result (readThroughWatermarks, awaitChunk). */
export interface ChunkWait {
  /** Ends the wait (the activity was cancelled, or its worker is shutting down). */
  signal?: AbortSignal;
  /** Called while waiting (an activity's heartbeat, so a long wait behind a lagging capture is not taken for a dead worker). */
  heartbeat?: () => void;
  /** The longest wait the caller can afford; then ChunkNotWrittenYetError. Unset: as long as the capture moves on. */
  waitMs?: number;
}

const ATTEMPTS = 3;

/** Reads the rows and has the capture write them; retried when the capture restarted in between. */
export async function readThroughWatermarks(
  opts: WatermarkReadOptions & ChunkWait,
  req: ChunkRead,
): Promise<ChunkWritten> {
  checkRequest(req);
  return withSourceClients(opts, async (primary, replica) => {
    for (let attempt = 1; ; attempt++) {
      const { chunk, rows, heldMs } = await handChunk(opts, req, primary, replica);
      const written = await awaitChunk(opts, chunk, opts);
      if (written !== null) return { read: rows.length, written, ...lastOf(req.tbl, rows) };
      if (attempt >= ATTEMPTS) throw new Error(abandonedWhy(opts.source.name, req, heldMs));
    }
  });
}

/** Reads the rows and hands them to the capture without waiting for it (awaitChunk waits). */
export async function handChunkRead(opts: WatermarkReadOptions, req: ChunkRead): Promise<HandedChunk> {
  checkRequest(req);
  return withSourceClients(opts, async (primary, replica) => (await handChunk(opts, req, primary, replica)).chunk);
}

/** Why the capture kept abandoning a chunk, as far as the reader can tell. */
function abandonedWhy(source: string, req: ChunkRead, heldMs: number): string {
  const base = `capture of ${source} abandoned the chunk ${ATTEMPTS} times`;
  if (heldMs < PIN_MAX_MS) return `${base} (it keeps restarting)`;
  return `${base}: its read took ${Math.round(heldMs / 1000)} s between its watermarks, longer than the ${PIN_MAX_MS / 1000} s a capture keeps a chunk's window open (capture/watermark-windows.ts). ${
    req.loads
      ? 'The load sums scan shop.orders for the days of the load window: an index on shop.orders (placed_at), made by the source database team, bounds that scan'
      : 'A smaller chunk (--chunk) reads faster'
  }`;
}

/** A request no read can answer, refused before anything is read or written. */
function checkRequest(req: ChunkRead): void {
  if (req.tbl === 'orders' && !req.loads)
    throw new Error('orders cannot be re-read row by row (the FC load is a sum of deltas): read their loads');
  const unsplittable = req.keys?.find((k) => keyColumnsOf(req.tbl, k) === null);
  if (unsplittable !== undefined)
    throw new Error(
      `a re-read of shop.${req.tbl}: key ${JSON.stringify(unsplittable)} does not split into its key columns (an id holding '|'); nothing was read`,
    );
}

/**
 * The replica once it has replayed everything the primary holds now; the primary when the replica
 * does not follow it (ReplicaNotFollowingError: it could serve changes the source no longer has).
 */
async function followingReplica(replica: pg.Client, primary: pg.Client, what: string): Promise<pg.Client> {
  try {
    await waitForReplay(replica, await primaryWalLsn(primary), what, () => primaryWalLsn(primary));
    return replica;
  } catch (err) {
    if (!(err instanceof ReplicaNotFollowingError)) throw err;
    logger('capture').warn(err.message);
    return primary;
  }
}

/**
 * A connection to the source, and one to its replica made when first asked for (`replica()`: load
 * sums never read there), all closed after `work`. A replica that cannot be reached gives null:
 * the rows are read on the primary then, with a warning, rather than a refill or a repair stuck
 * for as long as the replica is down.
 */
async function withSourceClients<T>(
  opts: WatermarkReadOptions,
  work: (primary: pg.Client, replica: () => Promise<pg.Client | null>) => Promise<T>,
): Promise<T> {
  const primary = new pg.Client({ connectionString: opts.source.url, application_name: 'fresh-badges-watermark' });
  // A connection lost between queries (a source restart or failover) emits 'error' on the client:
  // without a listener that ends the process. The query in flight, or the next, reports it.
  primary.on('error', () => {});
  let replica = null as Promise<pg.Client | null> | null;
  const connectReplica = async (url: string): Promise<pg.Client | null> => {
    // (one that just failed is not asked again for a while: each chunk would wait its timeout)
    if ((unreachableUntil.get(url) ?? 0) > Date.now()) return null;
    const client = new pg.Client({
      connectionString: url,
      application_name: 'fresh-badges-watermark',
      connectionTimeoutMillis: 5_000,
    });
    client.on('error', () => {});
    try {
      await client.connect();
      return client;
    } catch (err) {
      await client.end().catch(() => {});
      unreachableUntil.set(url, Date.now() + REPLICA_RETRY_MS);
      logger('capture').warn(
        `the replica of ${opts.source.name} cannot be reached (${redactText((err as Error).message)}): reading its rows on the primary for the next ${REPLICA_RETRY_MS / 1000} s`,
      );
      return null;
    }
  };
  try {
    await primary.connect();
    const replicaUrl = opts.source.replicaUrl;
    return await work(primary, () => (replica ??= replicaUrl ? connectReplica(replicaUrl) : Promise.resolve(null)));
  } finally {
    await primary.end().catch(() => {});
    await (await replica)?.end().catch(() => {});
  }
}

/** A replica that could not be reached is asked again after this long (until then: the primary). */
const REPLICA_RETRY_MS = 60_000;
const unreachableUntil = new Map<string, number>();

/** Reads the rows between the watermarks, and stores them for the capture. */
async function handChunk(
  opts: WatermarkReadOptions,
  req: ChunkRead,
  primary: pg.Client,
  replica: () => Promise<pg.Client | null>,
): Promise<{ chunk: HandedChunk; rows: ReadRow[]; heldMs: number }> {
  const { id, token } = await createChunk(opts.pipeline, {
    source: opts.source.name,
    tbl: req.tbl,
    keys: req.keys,
    range: req.range && { afterKey: req.range.after?.join('|') ?? null, limit: req.range.limit },
    fromDay: req.loads?.fromDay,
    deleteAbsent: req.deleteAbsent,
  });
  // Load sums are read on the primary: they need the snapshot's list of running transactions (a
  // transaction it did not see adds its deltas at the high watermark), and a standby's
  // pg_current_snapshot() leaves that list empty. Rows need no such list (every key changed
  // between the watermarks is left out), so they are read on the replica when there is one,
  // connected before the low watermark (a connect timeout inside the window would shorten it).
  const onReplica = req.loads ? null : await replica();
  await emit(primary, encodeWatermark('low', id, opts.source.name, opts.source.slot, token));
  const lowAt = Date.now();
  // the replica must have replayed the low watermark (and every change before it), and follow the primary
  const reader = onReplica ? await followingReplica(onReplica, primary, opts.source.name) : primary;
  const { snapshot, rows } = await readRows(reader, req);
  await storeChunkRead(opts.pipeline, id, snapshot, rows);
  await emit(primary, encodeWatermark('high', id, opts.source.name, opts.source.slot, token));
  const heldMs = Date.now() - lowAt;
  // (a statement of its own: the high watermark's transaction has committed before it)
  return { chunk: { id, highLsn: await primaryWalLsn(primary) }, rows, heldMs };
}

/**
 * Waits for the capture to write the chunk: the rows it wrote, or null when it will never write it
 * (it abandoned the chunk, or passed its high watermark without it: a slot lost and created
 * again skips that WAL; or the chunk is gone), and the chunk must be read again. While the capture's recorded position
 * moves on, the wait goes on; `timeoutMs` without a move is CaptureNotRunningError.
 */
export async function awaitChunk(
  opts: Pick<WatermarkReadOptions, 'pipeline' | 'source' | 'timeoutMs'>,
  chunk: HandedChunk,
  wait: ChunkWait = {},
): Promise<number | null> {
  const stillMs = opts.timeoutMs ?? 60_000;
  const started = Date.now();
  let stillSince = started;
  let position: string | null = null;
  for (;;) {
    const s = await chunkProgress(opts.pipeline, chunk);
    if (s.state === 'written') return s.written ?? 0;
    if (s.state === 'abandoned' || s.passed) return null;
    if (s.position !== position) {
      position = s.position;
      stillSince = Date.now();
    }
    wait.signal?.throwIfAborted();
    if (Date.now() - stillSince > stillMs)
      throw new CaptureNotRunningError(
        `the capture of ${opts.source.name} did not write chunk ${chunk.id} and did not move on within ${stillMs / 1000} s: is it running? (npm run ops -- status)`,
      );
    if (wait.waitMs !== undefined && Date.now() - started >= wait.waitMs)
      throw new ChunkNotWrittenYetError(
        `the capture of ${opts.source.name} has not yet written chunk ${chunk.id} (it is at ${s.position ?? 'no recorded position'}, the chunk's watermark before ${chunk.highLsn}): behind`,
      );
    wait.heartbeat?.();
    await sleep(20);
  }
}

/**
 * The chunk's state and the capture's recorded position, in one snapshot (the capture marks a chunk
 * written in the transaction that moves its position): `passed` when the position is at or past
 * the chunk's high watermark with the chunk neither written nor abandoned.
 */
async function chunkProgress(
  pipeline: pg.Pool,
  chunk: HandedChunk,
): Promise<{ state: string; written: number | null; position: string | null; passed: boolean }> {
  const r = await pipeline.query<{ state: string; written: number | null; position: string | null; passed: boolean }>(
    `select c.state, c.written, p.lsn::text as position, coalesce(p.lsn >= $2::pg_lsn, false) as passed
       from pipeline.capture_chunks c left join pipeline.capture_progress p on p.source = c.source
      where c.id = $1`,
    [chunk.id, chunk.highLsn],
  );
  // gone (pruned by compaction, or another pipeline database): never to be written, read again
  return r.rows[0] ?? { state: 'missing', written: null, position: null, passed: true };
}

/** The last row read: its outbox key and its key columns (from its image). */
function lastOf(tbl: SourceTable, rows: ReadRow[]): { lastKey: string | null; lastColumns: string[] | null } {
  const last = rows[rows.length - 1];
  if (!last) return { lastKey: null, lastColumns: null };
  const image = last.image as Record<string, unknown>;
  return { lastKey: last.key, lastColumns: SOURCE_TABLES[tbl].keyColumns.map((c) => String(image[c])) };
}

async function emit(primary: pg.Client, content: string): Promise<void> {
  await primary.query(`select pg_logical_emit_message(true, $1, $2)`, [TICK_PREFIX, content]);
}

/** The rows asked for, in one snapshot, with the snapshot's text. */
async function readRows(db: pg.Client, req: ChunkRead): Promise<{ snapshot: string; rows: ReadRow[] }> {
  if (req.loads) return readLoads(db, req.loads);
  const cols = SOURCE_TABLES[req.tbl].keyColumns;
  const keyExpr = cols.map((c) => `t.${pg.escapeIdentifier(c)}`).join(` || '|' || `);
  const colList = cols.map((c) => `t.${pg.escapeIdentifier(c)}`).join(', ');
  // an outbox key: the id itself for one key column (it may hold '|'), else the columns joined by '|'
  const parts = (param: string) =>
    cols.length === 1 ? param : cols.map((_, i) => `split_part(${param}, '|', ${i + 1})`).join(', ');
  let where: string;
  let params: unknown[];
  if (req.keys) {
    where = `where (${colList}) in (select ${parts('k')} from unnest($1::text[]) k)`;
    params = [req.keys];
  } else if (req.ofSku !== undefined) {
    if (req.tbl !== 'inventory') throw new Error('ofSku reads inventory rows');
    where = `where t.sku_id = $1`;
    params = [req.ofSku];
  } else {
    const range = req.range ?? { after: null, limit: 1_000 };
    if (range.after !== null && range.after.length !== cols.length)
      throw new Error(
        `a range of shop.${req.tbl} starts after ${cols.length} key column(s), not ${range.after.length}`,
      );
    where = range.after === null ? '' : `where (${colList}) > (${cols.map((_, i) => `$${i + 2}::text`).join(', ')})`;
    params = range.after === null ? [range.limit] : [range.limit, ...range.after];
  }
  const limit = req.keys || req.ofSku !== undefined ? `order by ${colList}` : `order by ${colList} limit $1`;
  await db.query(`begin isolation level repeatable read read only`);
  try {
    await db.query(`set local timezone = 'UTC'`);
    const snap = await db.query<{ s: string }>(`select pg_current_snapshot()::text as s`);
    const r = await db.query<ReadRow>(
      `select ${keyExpr} as key, to_json(t) as image from shop.${pg.escapeIdentifier(req.tbl)} t ${where} ${limit}`,
      params,
    );
    await db.query('commit');
    return { snapshot: snap.rows[0]!.s, rows: r.rows };
  } catch (err) {
    await db.query('rollback').catch(() => {});
    throw err;
  }
}

/** Each FC's load of each day from `fromDay` on, in one snapshot: the badge rule's sum (features/definitions.ts). */
async function readLoads(
  db: pg.Client,
  loads: { fromDay: string; alsoZero?: string[] },
): Promise<{ snapshot: string; rows: ReadRow[] }> {
  await db.query(`begin isolation level repeatable read read only`);
  try {
    await db.query(`set local timezone = 'UTC'`);
    const snap = await db.query<{ s: string }>(`select pg_current_snapshot()::text as s`);
    // (every FC and day the window's orders name, 0 where none counts: see WINDOW_LOADS_SQL)
    const r = await db.query<{ fc_id: string; day: string; load: string }>(WINDOW_LOADS_SQL, [
      dayStartIso(loads.fromDay),
    ]);
    await db.query('commit');
    const rows: ReadRow[] = r.rows.map((x) => ({ key: `${x.fc_id}|${x.day}`, image: { ...x, load: Number(x.load) } }));
    const have = new Set(rows.map((x) => x.key));
    for (const key of new Set(loads.alsoZero ?? []))
      if (!have.has(key)) {
        const cut = key.lastIndexOf('|'); // the day has none; an FC id might
        rows.push({ key, image: { fc_id: key.slice(0, cut), day: key.slice(cut + 1), load: 0 } });
      }
    return { snapshot: snap.rows[0]!.s, rows };
  } catch (err) {
    await db.query('rollback').catch(() => {});
    throw err;
  }
}
