/**
 * The landing area: every change the drain has applied, kept as Parquet files of the pipeline's
 * own, so the nightly export reads files and never scans the OLTP. A consumer of its own
 * ("landing") follows the drain (it lands only what the drain applied: its deltas end at the
 * drain's last complete snapshot), reads each snapshot delta in order, and writes one file per UTC
 * day of the changes in it:
 *   {EXPORT_DIR}/landing/day=YYYY-MM-DD/b<landing batch>-<first txid>_<id>-<last txid>_<id>.parquet
 * Files are written under a temporary name and renamed, so none is ever seen half-written. The
 * cursor moves after the files exist; a crash in between lands the range again, and the export
 * keeps each change once (by its position).
 */
import fs from 'node:fs';
import path from 'node:path';
import { setImmediate } from 'node:timers/promises';
import { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import type pg from 'pg';
import { names } from '../../config';
import { parseSnapshot, snapshotCovers, visibleIn } from '../../db/pg-snapshot';
import { advanceCursor, DELTA_SQL, deltaParams, ensureConsumer, Position, readCursor, saveCursor } from '../drain/outbox-reader';

export const LANDING_COLUMNS = `txid ubigint, id bigint, tbl varchar, op varchar, key varchar, image json, old_image json, source_ms bigint, applied_ms bigint`;

export const landingDir = (exportDir: string, day: string) => path.join(exportDir, 'landing', `day=${day}`);

/** An embedded DuckDB; `file` (a database file) lets big tables live on disk beyond the memory limit. */
export async function openDuck(memoryLimit = '512MB', file = ':memory:', threads = 2): Promise<{ conn: DuckDBConnection; writer: DuckDBConnection; close(): void }> {
  const instance = await DuckDBInstance.create(file, { memory_limit: memoryLimit, threads: String(threads) });
  const conn = await instance.connect();
  // Appenders get their own connection: an appender flushing on the connection that is streaming
  // a query result would end that stream early, silently.
  const writer = await instance.connect();
  return {
    conn,
    writer,
    close: () => {
      writer.closeSync();
      conn.closeSync();
      instance.closeSync();
    },
  };
}

export const sqlString = (s: string) => `'${s.replace(/'/g, "''")}'`;

/** Write-then-rename COPY of a query to a Parquet file. */
export async function copyToParquet(conn: DuckDBConnection, query: string, file: string): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  await conn.run(`copy (${query}) to ${sqlString(tmp)} (format parquet, compression zstd)`);
  fs.renameSync(tmp, file);
}

export async function landChanges(pool: pg.Pool, exportDir: string, maxRows: number): Promise<{ rows: number; files: string[]; position: Position; more: boolean }> {
  await ensureConsumer(pool, names.landingConsumer);
  const cursor = await readCursor(pool, names.landingConsumer);
  // Land only what the drain has applied: the drain's last complete snapshot is the target.
  const drainFrom = (await readCursor(pool, names.drainConsumer)).from;
  const target = cursor.to ?? drainFrom;
  // Nothing new, or the drain went back (it re-delivers to a store that lost writes): wait.
  if (cursor.to === null && (target === cursor.from || !snapshotCovers(parseSnapshot(target), parseSnapshot(cursor.from)))) {
    return { rows: 0, files: [], position: cursor.position, more: false };
  }
  const rows = (
    await pool.query(
      `select d.txid, d.id, d.tbl, d.op, d.key, d.image::text as image, d.old_image::text as old_image,
              d.created_ms::bigint::text as source_ms,
              to_char(to_timestamp(d.created_ms / 1000) at time zone 'UTC', 'YYYY-MM-DD') as day
         from (${DELTA_SQL}) d`,
      deltaParams({ from: cursor.from, to: target, after: cursor.position, limit: maxRows }),
    )
  ).rows;
  const { next, complete } = advanceCursor(cursor, { snap: target, at: null }, rows, maxRows);
  // More to land: this batch is not done, or it was an older target than the drain's now.
  const more = !complete || next.from !== drainFrom;
  if (rows.length === 0) {
    await saveCursor(pool, names.landingConsumer, next);
    return { rows: 0, files: [], position: next.position, more };
  }
  const appliedAt = await appliedTimes(pool, rows);
  const byDay = new Map<string, typeof rows>();
  rows.forEach((r, i) => {
    r.applied_ms = appliedAt[i];
    (byDay.get(r.day) ?? byDay.set(r.day, []).get(r.day)!).push(r);
  });
  // One thread: the landing runs every minute beside the drain; compressing a minute of changes
  // on both cores would stall the drain (and PostgreSQL and Redis) for that second.
  const duck = await openDuck('512MB', ':memory:', 1);
  const files: string[] = [];
  try {
    for (const [day, dayRows] of byDay) {
      await duck.conn.run(`create or replace table land (${LANDING_COLUMNS})`);
      const ap = await duck.conn.createAppender('land');
      let appended = 0;
      for (const r of dayRows) {
        // The appender is synchronous: hand the event loop back now and then, so the drain's
        // activities in this worker keep their latency while a minute of changes is landed.
        if (++appended % 2_000 === 0) await setImmediate();
        ap.appendUBigInt(BigInt(r.txid));
        ap.appendBigInt(BigInt(r.id));
        ap.appendVarchar(r.tbl);
        ap.appendVarchar(r.op);
        ap.appendVarchar(r.key);
        if (r.image === null) ap.appendNull();
        else ap.appendVarchar(r.image);
        if (r.old_image === null) ap.appendNull();
        else ap.appendVarchar(r.old_image);
        ap.appendBigInt(BigInt(r.source_ms));
        if (r.applied_ms === null) ap.appendNull();
        else ap.appendBigInt(BigInt(r.applied_ms));
        ap.endRow();
      }
      ap.flushSync();
      ap.closeSync();
      const first = dayRows[0];
      const end = dayRows[dayRows.length - 1];
      // Named by landing batch and range: a range landed again after a crash overwrites its file.
      const file = path.join(landingDir(exportDir, day), `b${cursor.batch}-${first.txid}_${first.id}-${end.txid}_${end.id}.parquet`);
      await copyToParquet(duck.conn, 'select * from land order by txid, id', file);
      files.push(file);
    }
  } finally {
    duck.close();
  }
  await saveCursor(pool, names.landingConsumer, next);
  const last = rows[rows.length - 1];
  return { rows: rows.length, files, position: { txid: last.txid, id: last.id }, more };
}

/**
 * When each change reached Redis: the applied time of the first drain snapshot that saw its
 * transaction (the drain's snapshots only grow, so a binary search over them in batch order).
 * null for changes applied before the snapshot log existed.
 */
async function appliedTimes(pool: pg.Pool, rows: { txid: string; created_at_ms?: string; source_ms: string }[]): Promise<(string | null)[]> {
  const oldest = rows.reduce((m, r) => Math.min(m, Number(r.source_ms)), Infinity);
  // A snapshot that saw a change was taken after the change was written.
  const snaps = (
    await pool.query(
      `select snap::text as snap, (extract(epoch from applied_at) * 1000)::bigint::text as ms
         from pipeline.drain_snapshots where taken_at >= to_timestamp($1::float8 / 1000) order by batch`,
      [oldest],
    )
  ).rows.map((r) => ({ snap: parseSnapshot(r.snap), ms: r.ms as string }));
  return rows.map((r) => {
    const txid = BigInt(r.txid);
    let lo = 0;
    let hi = snaps.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (visibleIn(snaps[mid].snap, txid)) hi = mid;
      else lo = mid + 1;
    }
    return lo < snaps.length ? snaps[lo].ms : null;
  });
}
