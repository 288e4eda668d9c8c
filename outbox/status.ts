/** What operators and metrics see of the outbox: rows a consumer has not applied, open transactions. */
import type pg from 'pg';
import { parseSnapshot } from '../db/pg-snapshot';
import { readCursor } from './cursor';
import { drainShards, readDrainLayout, shardRoutes } from './shards';
import type { StoreKeys } from '../store/keys';

/**
 * How many outbox rows are not yet applied by a consumer (visible now, not in its `from`), capped,
 * and the age of the oldest. For status and metrics.
 */
export async function pendingRows(
  db: pg.Pool | pg.ClientBase,
  consumer: string,
  cap: number,
  routes: number[] | null = null,
): Promise<{ rows: number; oldestAgeMs: number | null }> {
  // Two index scans, as the delta reads them (an OR of both conditions would scan the table), with
  // the snapshot's bounds as parameters, so the planner sees how few rows lie past them.
  const from = parseSnapshot((await readCursor(db, consumer)).from);
  const r = await db.query(
    `with pending as (
       (select o.created_at from pipeline.outbox o where o.txid = any($1::xid8[]) and ($4::int[] is null or o.route = any($4)) limit $3)
       union all
       (select o.created_at from pipeline.outbox o where o.txid >= $2::xid8 and ($4::int[] is null or o.route = any($4)) limit $3))
     select least(count(*), $3)::int as n, (extract(epoch from clock_timestamp() - min(created_at)) * 1000)::float8 as age from pending`,
    [from.xip.map(String), String(from.xmax), cap, routes],
  );
  const row = r.rows[0];
  return { rows: row?.n ?? 0, oldestAgeMs: row?.age === null || row?.age === undefined ? null : Math.round(row.age) };
}

export interface OpenTransactions {
  /** Transactions holding a transaction id anywhere in the cluster (they hold back vacuum). */
  count: number;
  oldest: { pid: number; application: string; state: string; ageMs: number } | null;
}

/**
 * Open write transactions, for information: they no longer delay freshness, but they still hold
 * back vacuum and outbox compaction (rows at or above the oldest one's txid are kept). Never
 * reports other sessions' SQL text: pid, application name, state and age say enough.
 */
export async function openTransactions(db: pg.Pool | pg.ClientBase): Promise<OpenTransactions> {
  const r = await db.query(
    `select count(*) over () as n, pid, coalesce(application_name, '') as app, coalesce(state, '') as state,
            (extract(epoch from clock_timestamp() - xact_start) * 1000)::float8 as age_ms
       from pg_stat_activity
      where backend_xid is not null and pid <> pg_backend_pid()
      order by age(backend_xid) desc limit 1`,
  );
  if (!r.rowCount) return { count: 0, oldest: null };
  const row = r.rows[0];
  return {
    count: Number(row.n),
    oldest: { pid: row.pid, application: row.app, state: row.state, ageMs: Math.round(Number(row.age_ms)) },
  };
}

/**
 * Rows not yet applied, over every drain shard (each counts the rows of its own routes; a row
 * every shard reads counts once per shard that has not applied it), and the oldest one's age.
 */
export async function drainPendingRows(
  db: pg.Pool | pg.ClientBase,
  keys: StoreKeys,
  cap: number,
): Promise<{ rows: number; oldestAgeMs: number | null }> {
  let rows = 0;
  let oldestAgeMs: number | null = null;
  for (const shard of drainShards((await readDrainLayout(db)).shards)) {
    const p = await pendingRows(db, shard.consumer, cap, shard.count > 1 ? shardRoutes(keys, shard) : null);
    rows = Math.min(cap, rows + p.rows);
    if (p.oldestAgeMs !== null && (oldestAgeMs === null || p.oldestAgeMs > oldestAgeMs)) oldestAgeMs = p.oldestAgeMs;
  }
  return { rows, oldestAgeMs };
}
