/**
 * A landing area written by hand, for export tests of days long over: the columns the landing
 * writes (activities/export/landing.ts), each change with txid 1000 + its id, applied 50 ms after
 * it was written; and the exported partition's files read back with DuckDB.
 */
import path from 'node:path';
import { copyToParquet, openDuck, sqlString } from '../../activities/export/duckdb';
import { partitionDir } from '../../activities/export/export-day';
import { LANDING_COLUMNS } from '../../activities/export/landing';

/** One landed change: [id, tbl, op, key, image, old image, time written (ms)]. */
export type LandedChange = [number, string, string, string, unknown, unknown, number];

/** Writes the changes as the landing of `date`, in each of `files` (more than one: landed again after a crash). */
export async function landByHand(
  dir: string,
  date: string,
  changes: LandedChange[],
  files = ['b1-1001_1-1009_9.parquet'],
): Promise<void> {
  const landing = await openDuck('256MB');
  try {
    await landing.conn.run(`create table land (${LANDING_COLUMNS})`);
    for (const [id, tbl, op, key, image, old, ms] of changes)
      await landing.conn.run(
        `insert into land values (${1000 + id}, ${id}, ${sqlString(tbl)}, ${sqlString(op)}, ${sqlString(key)},
           ${image === null ? 'null' : sqlString(JSON.stringify(image))}, ${old === null ? 'null' : sqlString(JSON.stringify(old))},
           ${ms}, ${ms + 50})`,
      );
    for (const file of files)
      await copyToParquet(landing.conn, 'select * from land', path.join(dir, 'landing', `day=${date}`, file));
  } finally {
    landing.close();
  }
}

/** A reader of the exported partition of `date`: `$file` in the query is the file named. */
export function partitionReader(duck: Awaited<ReturnType<typeof openDuck>>, dir: string, date: string) {
  return async (file: string, query: string) =>
    (
      await duck.conn.runAndReadAll(
        query.replace('$file', `read_parquet(${sqlString(path.join(partitionDir(dir, date), file))})`),
      )
    ).getRowObjectsJson();
}
