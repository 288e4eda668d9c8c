/**
 * The landing area: every change the drain has applied, kept as Parquet files of the pipeline's
 * own, so the nightly export reads files and never scans the OLTP. A consumer of its own
 * ("landing") follows the drain's cursor (it lands only what the drain applied), reads the outbox
 * range in order, and writes one file per UTC day of the changes in it:
 *   {EXPORT_DIR}/landing/day=YYYY-MM-DD/<from txid>_<from id>-<to txid>_<to id>.parquet
 * Files are written under a temporary name and renamed, so none is ever seen half-written. The
 * cursor moves after the files exist; a crash in between lands the range again, and the export
 * keeps each change once (by its position).
 */
import fs from 'node:fs';
import path from 'node:path';
import { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import type pg from 'pg';
import { names } from '../../config';
import { Cursor, readCursor } from '../drain/outbox-reader';

export const LANDING_COLUMNS = `txid ubigint, id bigint, tbl varchar, op varchar, key varchar, image json, old_image json, source_ms bigint, applied_ms bigint`;

export const landingDir = (exportDir: string, day: string) => path.join(exportDir, 'landing', `day=${day}`);

/** An embedded DuckDB; `file` (a database file) lets big tables live on disk beyond the memory limit. */
export async function openDuck(memoryLimit = '512MB', file = ':memory:'): Promise<{ conn: DuckDBConnection; writer: DuckDBConnection; close(): void }> {
  const instance = await DuckDBInstance.create(file, { memory_limit: memoryLimit, threads: '2' });
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

export async function landChanges(pool: pg.Pool, exportDir: string, maxRows: number): Promise<{ rows: number; files: string[]; position: Cursor; more: boolean }> {
  await pool.query('insert into pipeline.consumer_offsets (consumer) values ($1) on conflict do nothing', [names.landingConsumer]);
  const from = await readCursor(pool, names.landingConsumer);
  const to = await readCursor(pool, names.drainConsumer);
  const rows = (
    await pool.query(
      `select o.txid::text as txid, o.id::text as id, o.tbl, o.op, o.key, o.image::text as image, o.old_image::text as old_image,
              (extract(epoch from o.created_at) * 1000)::bigint::text as source_ms,
              to_char(o.created_at at time zone 'UTC', 'YYYY-MM-DD') as day
         from pipeline.outbox o
        where (o.txid, o.id) > ($1::xid8, $2::bigint) and (o.txid, o.id) <= ($3::xid8, $4::bigint)
        order by o.txid, o.id limit $5`,
      [from.txid, from.id, to.txid, to.id, maxRows],
    )
  ).rows;
  if (rows.length === 0) return { rows: 0, files: [], position: from, more: false };
  const last = rows[rows.length - 1];
  // When each change was applied: the first drain batch whose end is at or after it (both lists
  // are in stream order, so one merge pass).
  const batches = (
    await pool.query(
      `select to_txid::text as txid, to_id::text as id, (extract(epoch from applied_at) * 1000)::bigint::text as ms
         from pipeline.drain_batches where (to_txid, to_id) >= ($1::xid8, $2::bigint) order by to_txid, to_id limit $3`,
      [rows[0].txid, rows[0].id, rows.length + 1],
    )
  ).rows;
  const before = (a: { txid: string; id: string }, b: { txid: string; id: string }) =>
    BigInt(a.txid) < BigInt(b.txid) || (a.txid === b.txid && BigInt(a.id) <= BigInt(b.id));
  let b = 0;
  const byDay = new Map<string, typeof rows>();
  for (const r of rows) {
    while (b < batches.length && !before(r, batches[b])) b++;
    r.applied_ms = b < batches.length ? batches[b].ms : null;
    (byDay.get(r.day) ?? byDay.set(r.day, []).get(r.day)!).push(r);
  }
  const duck = await openDuck();
  const files: string[] = [];
  try {
    for (const [day, dayRows] of byDay) {
      await duck.conn.run(`create or replace table land (${LANDING_COLUMNS})`);
      const ap = await duck.conn.createAppender('land');
      for (const r of dayRows) {
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
      const file = path.join(landingDir(exportDir, day), `${first.txid}_${first.id}-${end.txid}_${end.id}.parquet`);
      await copyToParquet(duck.conn, 'select * from land order by txid, id', file);
      files.push(file);
    }
  } finally {
    duck.close();
  }
  await pool.query(`update pipeline.consumer_offsets set txid = $2::xid8, id = $3, updated_at = now() where consumer = $1`, [names.landingConsumer, last.txid, last.id]);
  return { rows: rows.length, files, position: { txid: last.txid, id: last.id }, more: rows.length === maxRows };
}
