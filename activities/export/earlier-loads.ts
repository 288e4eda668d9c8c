/**
 * This day's load changes that landed on an earlier day. A change lands on the UTC day the
 * pipeline wrote it (landing.ts), but an order counts on the day of its placed_at: an order placed
 * on this day and written before its midnight (a placed_at ahead of the pipeline's clock, an order
 * moved to this day) and a load set of this day written before it are in an earlier day's files.
 * The store counts them in this day's counter from the moment it applied them, so the export's
 * fold of this day's load (load-history.ts) takes them too, at midnight, in stream order.
 *
 * Candidates are filtered in DuckDB (orders rows whose placed_at, new or old, is not before the
 * day before this one, as text: offsets are at most a day; load sets of this day; every refill's
 * completeness, which zeroes the day's counters the store then held; orders TRUNCATEs); the exact
 * day comes from the drain's own definitions (export-day.ts). A TRUNCATE of
 * orders before midnight emptied every load: what was written before the last one counts nowhere.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { LANDING_COLUMNS } from './landing';
import { hasLandedChanges, landingDir, shiftDay } from './day-inputs';
import { sqlString } from './duckdb';

/** The landing days before `date` that hold files, oldest first. */
export function earlierLandingDays(exportDir: string, date: string): string[] {
  const root = path.dirname(landingDir(exportDir, date));
  if (!fs.existsSync(root)) return [];
  return fs
    .readdirSync(root)
    .map((name) => /^day=(\d{4}-\d\d-\d\d)$/.exec(name)?.[1])
    .filter((day): day is string => !!day && day < date)
    .filter((day) => hasLandedChanges(exportDir, day))
    .sort();
}

/**
 * Creates `carried` (the landing's columns): the changes of earlier landing days that may change
 * this day's load, each once, after the last TRUNCATE of orders among them. Returns how many.
 */
export async function loadEarlierLoadChanges(conn: DuckDBConnection, exportDir: string, date: string): Promise<number> {
  await conn.run(`create table carried (${LANDING_COLUMNS})`);
  const days = earlierLandingDays(exportDir, date);
  if (!days.length) return 0;
  const files = days.map((day) => sqlString(path.join(landingDir(exportDir, day), '*.parquet')));
  const yyyymmdd = date.replace(/-/g, '');
  const since = sqlString(shiftDay(date, -1));
  await conn.run(
    `insert into carried select * from read_parquet([${files.join(', ')}], hive_partitioning = false)
      where tbl = 'orders'
        and (op = 'T'
             or (op = 'S' and json_extract_string(image, '$.day') = ${sqlString(yyyymmdd)})
             or (op = 'S' and json_extract_string(image, '$.complete_from') is not null)
             or json_extract_string(image, '$.placed_at') >= ${since}
             or json_extract_string(old_image, '$.placed_at') >= ${since})`,
  );
  // each change once (a crash can land a range twice), and nothing from before the last TRUNCATE
  await conn.run(`delete from carried where rowid in (
    select rowid from (select rowid, row_number() over (partition by txid, id order by rowid) as n from carried) where n > 1)`);
  await conn.run(`delete from carried c using (
      select txid, id from carried where op = 'T' order by txid desc, id desc limit 1) t
    where c.txid < t.txid or (c.txid = t.txid and c.id <= t.id)`);
  const r = await conn.runAndReadAll('select count(*) from carried');
  return Number(r.getRows()[0][0]);
}
