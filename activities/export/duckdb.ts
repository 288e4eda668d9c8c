/** The export's DuckDB helpers: an embedded instance, SQL string quoting, atomic Parquet writes. */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';

/** An embedded DuckDB; `file` (a database file) lets big tables live on disk beyond the memory limit. */
export async function openDuck(
  memoryLimit = '512MB',
  file = ':memory:',
  threads = 2,
): Promise<{ conn: DuckDBConnection; writer: DuckDBConnection; close(): void }> {
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

/**
 * Write-then-rename COPY of a query to a Parquet file, durable when it returns: the file is
 * flushed to disk before the rename and its folder after it. A landing file is the only copy of
 * its changes once the outbox is pruned past them, and its cursor moves right after this: without
 * the flushes a power loss could leave the cursor past a file that is empty or gone.
 */
export async function copyToParquet(conn: DuckDBConnection, query: string, file: string): Promise<void> {
  mkdirDurable(path.dirname(file));
  // its own temporary name: two writers of one file in one process must not write into one file
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await conn.run(`copy (${query}) to ${sqlString(tmp)} (format parquet, compression zstd)`);
  fsyncPath(tmp);
  fs.renameSync(tmp, file);
  fsyncPath(path.dirname(file));
}

/** mkdir -p, each folder it creates flushed into its parent (a day's first landing file needs its folder). */
export function mkdirDurable(dir: string): void {
  const first = fs.mkdirSync(dir, { recursive: true });
  if (first === undefined) return;
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    fsyncPath(path.dirname(d));
    if (d === path.resolve(first)) break;
  }
}

/** Flushes a file, or a folder's entries, to disk. */
export function fsyncPath(p: string): void {
  const fd = fs.openSync(p, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
