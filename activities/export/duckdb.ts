/** The export's DuckDB helpers: an embedded instance, SQL string quoting, atomic Parquet writes. */
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

/** Write-then-rename COPY of a query to a Parquet file. */
export async function copyToParquet(conn: DuckDBConnection, query: string, file: string): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  await conn.run(`copy (${query}) to ${sqlString(tmp)} (format parquet, compression zstd)`);
  fs.renameSync(tmp, file);
}
