/**
 * The landing area: every change the drain has applied, kept as Parquet files of the pipeline's
 * own, so the nightly export reads files and never scans the OLTP. A consumer of its own
 * ("landing") follows the drain (it lands only what the drain applied: its deltas end at the
 * drain's last complete snapshot), reads each snapshot delta in order, and writes one file per UTC
 * day of the changes in it:
 *   {EXPORT_DIR}/landing/day=YYYY-MM-DD/b<landing batch>-<first txid>_<id>-<last txid>_<id>-<call>.parquet
 * Files are written under a temporary name and renamed, so none is ever seen half-written. The
 * cursor moves after the files exist; a crash in between lands the range again, and the export
 * keeps each change once (by its position). Calls take no lock: each moves the cursor only from
 * where it read it, so two run side by side land some changes twice, never move it back. Each
 * call's files are its own (<call>, random): two calls from one cursor can read different
 * snapshots, so one range's files can differ, and one renamed over the other could drop a change
 * the cursor has passed.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { setImmediate, setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { names } from '../../config';
import type { DuckDBConnection } from '@duckdb/node-api';
import { copyToParquet, openDuck, sqlString } from './duckdb';
import { landingDir } from './day-inputs';
import { parseSnapshot, snapshotCovers } from '../../db/pg-snapshot';
import { appliedClock } from './applied-clock';
import {
  advanceCursor,
  type ConsumerCursor,
  DELTA_SQL,
  deltaParams,
  drainAppliedSnapshot,
  ensureConsumer,
  Position,
  readCursor,
  saveCursorIfUnchanged,
} from '../../outbox';

export const LANDING_COLUMNS = `txid ubigint, id bigint, tbl varchar, op varchar, key varchar, image json, old_image json, source_ms bigint, applied_ms bigint`;

/** Outbox rows read per query of a landing call: small reads, so PostgreSQL never serves one long query beside the drain. */
export const LANDING_READ_CHUNK = 10_000;

/**
 * Lands up to `maxRows` changes of the landing's batch in progress. The delta is read in chunks of
 * `readChunk` rows, each appended to DuckDB as it arrives (memory: one chunk plus DuckDB's), with
 * the event loop handed back between chunks, at most `rowsPerSecond` rows a second (0: no limit);
 * then one file per UTC day and the cursor saved once.
 */
export async function landChanges(
  pool: pg.Pool,
  exportDir: string,
  maxRows: number,
  { readChunk = LANDING_READ_CHUNK, rowsPerSecond = 0 }: { readChunk?: number; rowsPerSecond?: number } = {},
): Promise<{ rows: number; files: string[]; position: Position; more: boolean }> {
  await ensureConsumer(pool, names.landingConsumer);
  const cursor = await readCursor(pool, names.landingConsumer);
  // Land only what the drain has applied: the drain's last complete snapshot is the target.
  const drain = await drainAppliedSnapshot(pool);
  const drainFrom = drain.snap;
  const target = cursor.to ?? drainFrom;
  // When the target was taken: everything committed before it is landed once the batch is done
  // (the nightly export checks that its day is over in the landing: landedThrough).
  const targetAt = cursor.to !== null ? cursor.toAt : drain.at;
  // Nothing new, or the drain went back (it re-delivers to a store that lost writes): wait.
  if (
    cursor.to === null &&
    (target === cursor.from || !snapshotCovers(parseSnapshot(target), parseSnapshot(cursor.from)))
  ) {
    // (a cursor from before the landed-through time was recorded learns it here: same snapshot)
    if (target === cursor.from && drain.at !== null && cursor.fromAt === null)
      await saveCursorIfUnchanged(pool, names.landingConsumer, cursor, { ...cursor, fromAt: drain.at });
    return { rows: 0, files: [], position: cursor.position, more: false };
  }
  const chunkSize = Math.max(1, Math.floor(readChunk));
  const land: LandTable = { duck: null };
  let read: LandingRead;
  let files: string[];
  try {
    read = await readIntoLandTable(pool, land, cursor, target, { maxRows, chunkSize, rowsPerSecond });
    files = await writeDayFiles(land.duck?.conn, exportDir, cursor.batch, read.days);
  } finally {
    land.duck?.close();
  }
  const { next, complete } = landingCursorAfter(cursor, { snap: target, at: targetAt }, read.last, read.exhausted);
  // More to land: this batch is not done, or it was an older target than the drain's now.
  const more = !complete || next.from !== drainFrom;
  // Only over the cursor this call read: a landing call run beside it (by hand, or a schedule's
  // run overlapping a slow one) that saved first may be further on, and is never moved back. This
  // call's files then hold changes that one landed too; the export keeps each change once.
  const saved = await saveCursorIfUnchanged(pool, names.landingConsumer, cursor, next);
  return { rows: read.total, files, position: read.last ?? next.position, more: more || !saved };
}

/** The in-memory DuckDB table `land` of one landing call, opened at its first row. */
interface LandTable {
  duck: Awaited<ReturnType<typeof openDuck>> | null;
}

/** What one landing call read into `land`. */
interface LandingRead {
  /** Per UTC day, in order of first appearance: its first and last row of this call (the file's name). */
  days: Map<string, { first: Position; last: Position }>;
  total: number;
  last: Position | null;
  /** The batch has no more rows (a chunk came back short). */
  exhausted: boolean;
}

/** Reads the delta from the cursor to `target` in chunks, appending each to `land`, until the batch ends or maxRows are read. */
async function readIntoLandTable(
  pool: pg.Pool,
  land: LandTable,
  cursor: ConsumerCursor,
  target: string,
  { maxRows, chunkSize, rowsPerSecond }: { maxRows: number; chunkSize: number; rowsPerSecond: number },
): Promise<LandingRead> {
  const appliedTimes = appliedClock(pool);
  const read: LandingRead = { days: new Map(), total: 0, last: null, exhausted: false };
  const startedAt = Date.now();
  // Chunk after chunk from the last row read, exactly as the cursor would resume: the rows of
  // all chunks are the rows one read of `maxRows` would return, in the same (txid, id) order.
  for (let after = cursor.position; ;) {
    const limit = Math.min(chunkSize, maxRows - read.total);
    const rows = await readDeltaChunk(pool, cursor.from, target, after, limit);
    if (rows.length > 0) {
      const conn = await openLandTable(land);
      await appendChunk(conn, rows, await appliedTimes(rows));
      noteDays(read.days, rows);
      read.total += rows.length;
      read.last = { txid: rows[rows.length - 1].txid, id: rows[rows.length - 1].id };
      after = read.last;
    }
    // Fewer than asked: the batch has no more rows. Otherwise stop once maxRows are read.
    if (rows.length < limit) {
      read.exhausted = true;
      break;
    }
    if (read.total >= maxRows) break;
    // Hand the event loop back between chunks (the drain's activities keep their latency), and
    // hold the read rate to `rowsPerSecond`: PostgreSQL serves these reads at the drain's priority.
    await setImmediate();
    if (rowsPerSecond > 0) await sleep(Math.max(0, startedAt + (read.total / rowsPerSecond) * 1000 - Date.now()));
  }
  return read;
}

/** A delta row as read for landing: columns as text (the images as JSON text), with its UTC day. */
type LandingRow = {
  txid: string;
  id: string;
  tbl: string;
  op: string;
  key: string;
  image: string | null;
  old_image: string | null;
  source_ms: string;
  day: string;
};

/** One chunk of the delta after `after`, with each change's source time and UTC day. */
async function readDeltaChunk(
  pool: pg.Pool,
  from: string,
  to: string,
  after: Position,
  limit: number,
): Promise<LandingRow[]> {
  return (
    await pool.query<LandingRow>(
      `select d.txid, d.id, d.tbl, d.op, d.key, d.image::text as image, d.old_image::text as old_image,
              d.created_ms::bigint::text as source_ms,
              to_char(to_timestamp(d.created_ms / 1000) at time zone 'UTC', 'YYYY-MM-DD') as day
         from (${DELTA_SQL}) d`,
      deltaParams({ from, to, after, limit }),
    )
  ).rows;
}

/** The connection to `land`, opening DuckDB and creating the table the first time. */
async function openLandTable(land: LandTable): Promise<DuckDBConnection> {
  if (!land.duck) {
    // One thread: the landing runs every minute beside the drain; compressing a minute of
    // changes on both cores would stall the drain (and PostgreSQL and Redis) for that second.
    land.duck = await openDuck('512MB', ':memory:', 1);
    await land.duck.conn.run(`create or replace table land (${LANDING_COLUMNS}, day varchar)`);
  }
  return land.duck.conn;
}

/** Extends each row's UTC day range to the row. */
function noteDays(days: LandingRead['days'], rows: LandingRow[]): void {
  for (const r of rows) {
    const at = { txid: r.txid, id: r.id };
    const d = days.get(r.day);
    if (d) d.last = at;
    else days.set(r.day, { first: at, last: at });
  }
}

/** Writes one Parquet file per UTC day from `land`; returns their paths. */
async function writeDayFiles(
  conn: DuckDBConnection | undefined,
  exportDir: string,
  batch: string,
  days: LandingRead['days'],
): Promise<string[]> {
  const files: string[] = [];
  const call = randomBytes(4).toString('hex');
  for (const [day, range] of days) {
    const { first, last: end } = range;
    // Named by landing batch, range and call: no call's file replaces another's (see the header).
    const file = path.join(
      landingDir(exportDir, day),
      `b${batch}-${first.txid}_${first.id}-${end.txid}_${end.id}-${call}.parquet`,
    );
    await copyToParquet(
      conn!,
      `select * exclude (day) from land where day = ${sqlString(day)} order by txid, id`,
      file,
    );
    files.push(file);
  }
  return files;
}

/** The landing cursor after this call's rows (see the comment inside on why it is the one-read cursor). */
function landingCursorAfter(
  cursor: ConsumerCursor,
  target: { snap: string; at: number | null },
  last: Position | null,
  exhausted: boolean,
): { next: ConsumerCursor; complete: boolean } {
  // The cursor one read of all these rows (limit maxRows) would give. advanceCursor decides on the
  // count against the limit (fewer: the batch is complete) and takes the last row, nothing else.
  // The loop stopped either on a short chunk (the batch has no more rows; total < maxRows, so one
  // read would have come back short too: complete) or with exactly maxRows read (one read would
  // have come back full: not complete). The last row with an effective limit of one more than the
  // rows passed (exhausted) or equal to them (maxRows reached) is the same decision and position.
  const tail = last ? [last] : [];
  return advanceCursor(cursor, target, tail, exhausted ? tail.length + 1 : tail.length);
}

/** Appends one chunk of delta rows (with their applied times) to the `land` table. */
async function appendChunk(
  conn: DuckDBConnection,
  rows: Record<string, string | null>[],
  appliedAt: (string | null)[],
): Promise<void> {
  const ap = await conn.createAppender('land');
  try {
    for (let i = 0; i < rows.length; i++) {
      // The appender is synchronous: hand the event loop back now and then, so the drain's
      // activities in this worker keep their latency while a minute of changes is landed.
      if (i > 0 && i % 2_000 === 0) await setImmediate();
      const r = rows[i];
      ap.appendUBigInt(BigInt(r.txid!));
      ap.appendBigInt(BigInt(r.id!));
      ap.appendVarchar(r.tbl!);
      ap.appendVarchar(r.op!);
      ap.appendVarchar(r.key!);
      if (r.image === null) ap.appendNull();
      else ap.appendVarchar(r.image);
      if (r.old_image === null) ap.appendNull();
      else ap.appendVarchar(r.old_image);
      ap.appendBigInt(BigInt(r.source_ms!));
      if (appliedAt[i] === null) ap.appendNull();
      else ap.appendBigInt(BigInt(appliedAt[i]!));
      ap.appendVarchar(r.day!);
      ap.endRow();
    }
    ap.flushSync();
  } finally {
    ap.closeSync();
  }
}

/**
 * Until when every committed change is landed (ms since the epoch, the database's clock): the time
 * of the drain snapshot the landing's last complete batch ended at; null when not known (a
 * landing cursor written before this was recorded, until its next batch).
 */
export async function landedThrough(pool: pg.Pool): Promise<number | null> {
  return (await readCursor(pool, names.landingConsumer)).fromAt;
}
