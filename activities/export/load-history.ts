/**
 * The day's load per FC in the export: fc_load_history.parquet, and the end-of-day value the
 * badges and state.parquet take. Folded the way the online store applies it (store/lua/apply.lua),
 * so that after a refill the export and the store agree: the day starts at 0 at midnight, each
 * order delta of the day adds to the running load (those that landed on earlier days first, at
 * midnight: earlier-loads.ts), and a load set of the day (the whole load of
 * (FC, day) re-read from a source captured from the WAL: `fc.loadSet` in features/definitions.ts)
 * replaces the running load at its place in the stream; the deltas after it add to it. A load set
 * of another day leaves this day's load alone. A refill's completeness (`fc.loadsComplete`, after
 * its last set, from a day on or before this one) sets to 0 every FC's load that no set of its own
 * outbox transaction set, as op Z does in the store.
 *
 * The stream order is the export's change order, (txid, id) of the outbox (under capture from the
 * WAL, the order the capture wrote the source's transactions and the sets in). A load set makes
 * the order matter: the deltas before it are in its value, the ones after are not.
 *
 * Reads the export's `updates` (the day's feature updates) and `ev` (the FCs known today, from
 * `fc.capacity`); creates `load_iv` (every step of the fold) and `load_end` (the last one per FC).
 */
import path from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { copyToParquet, sqlString } from './duckdb';

/** The day being exported: its bounds (ms since epoch, UTC) and its load key (yyyymmdd). */
export interface LoadDay {
  d0: number;
  d1: number;
  yyyymmdd: string;
}

/**
 * The fold, into `load_iv` (fc, ptxid, id, load, from_ms, to_ms: one row per step) and `load_end`
 * (fc, load, version: the load after the FC's last change of the day in stream order, and that
 * change's outbox id, a refill's completeness being a change of every FC; 0 for an FC with none).
 */
export async function foldDayLoads(conn: DuckDBConnection, { d0, d1, yyyymmdd }: LoadDay): Promise<void> {
  const day = sqlString(yyyymmdd);
  const ofDay = `feature in ('fc.load', 'fc.loadSet') and k2 = ${day}`;
  // days as yyyymmdd, 9 digits from year 10000 on: a shorter one is earlier
  const fromThisDayOrBefore = `(length(k2) < length(${day}) or (length(k2) = length(${day}) and k2 <= ${day}))`;
  // Midnight is a set to 0 ahead of the day's stream, for every FC known today or named by a
  // change. `run` numbers the sets (midnight included) up to each step: the load is the sum of
  // the step's run, so a set restarts the sum at its value. A step starts at its change's time,
  // or at the latest time of the changes before it in the stream if that is later (source
  // clocks and the stream can disagree a little): the intervals follow the stream, without gaps.
  // A completeness is a set to 0 of every FC at its place, but for the FCs its own transaction set.
  await conn.run(`create table load_iv as
    with fcs as (select k1 as fc from ev where feature = 'fc.capacity' union select k1 from updates where ${ofDay}),
    complete as (select ptxid, version as id, ts_ms from updates where feature = 'fc.loadsComplete' and ${fromThisDayOrBefore}),
    ld as (
      select fc, 0::ubigint as ptxid, 0::bigint as id, ${d0}::bigint as ts_ms, 0::bigint as num, true as restart from fcs
      union all
      select k1, ptxid, version, greatest(ts_ms, ${d0}), num, feature = 'fc.loadSet' from updates where ${ofDay}
      union all
      select f.fc, c.ptxid, c.id, greatest(c.ts_ms, ${d0}), 0, true from fcs f, complete c
       where not exists (select 1 from updates s
                          where s.feature = 'fc.loadSet' and s.code is null and s.k2 = ${day} and s.k1 = f.fc
                            and s.ptxid = c.ptxid)),
    steps as (
      select fc, ptxid, id, num, max(ts_ms) over s as from_ms, sum(restart::int) over s as run
        from ld window s as (partition by fc order by ptxid, id rows unbounded preceding))
    select fc, ptxid, id, (sum(num) over (partition by fc, run order by ptxid, id rows unbounded preceding))::bigint as load,
           from_ms, coalesce(lead(from_ms) over (partition by fc order by ptxid, id), ${d1}) as to_ms
      from steps`);
  // The last step in stream order, not the latest interval: steps at the same instant make
  // empty intervals, and only the stream says which of them came last.
  await conn.run(`create table load_end as
    select fc, arg_max(load, (ptxid, id)) as load, arg_max(id, (ptxid, id)) as version from load_iv group by fc`);
}

/** fc_load_history.parquet: the fold's non-empty intervals per FC. */
export async function writeLoadHistory(conn: DuckDBConnection, staging: string, day: LoadDay): Promise<void> {
  await foldDayLoads(conn, day);
  await copyToParquet(
    conn,
    `select fc, load, epoch_ms(from_ms) as valid_from, epoch_ms(to_ms) as valid_to from load_iv where to_ms > from_ms order by fc, from_ms`,
    path.join(staging, 'fc_load_history.parquet'),
  );
}
