/**
 * Reads the outbox by snapshot deltas: what became visible between two snapshots.
 *
 * Why this never skips a change and never waits for an open transaction. A consumer's cursor is
 * the last snapshot S(k-1) whose every visible outbox row it has applied. The next batch takes a
 * new snapshot S(k) and reads the rows visible in S(k) but not in S(k-1): rows of transactions
 * that were still in progress in S(k-1) (its xip list) or had not started (txid >= its xmax). A
 * transaction that is still open in S(k) is simply not visible yet; it holds back nothing else and
 * is picked up by the first batch whose snapshot sees its commit, whatever order transactions
 * commit in. An aborted transaction is never visible. Outbox rows are never updated, so a batch
 * re-read after a crash (same S(k-1), same S(k)) yields exactly the same rows.
 *
 * A big batch (a backlog) is delivered in chunks of at most `limit` rows, in (txid, id) order:
 * the cursor then keeps S(k) as the batch's target and the (txid, id) position reached.
 *
 * Cost: both parts of the delta are index lookups on the outbox key (txid, id): one probe per
 * transaction that finished since S(k-1) and one range scan from S(k-1)'s xmax to S(k)'s. Rows
 * written by transactions still open are not read at all, however long they stay open.
 */
import pg from 'pg';
import { withTransaction } from '../db/transaction';
import type { OutboxRow } from '../features/from-source';
import { parseSnapshot } from '../db/pg-snapshot';
import type { Position } from './cursor';

/**
 * Rows visible in `to` and not in `from`, after `after` in (txid, id) order, at most `limit`.
 * Part one probes the transactions in `from`'s in-progress list that `to` sees finished; part two
 * scans the txid range [xmax(from), xmax(to)). Every part-one txid is below every part-two txid.
 */
export async function readDelta(
  db: pg.ClientBase | pg.Pool,
  input: { from: string; to: string; after: Position; limit: number; routes?: number[] | null },
): Promise<OutboxRow[]> {
  if (!input.routes) return (await db.query<OutboxRow>(DELTA_SQL, deltaParams(input))).rows;
  const sql = shardDeltaSql(input.routes);
  const read = async (client: pg.ClientBase) => {
    // The route index is read in (txid, id) order, a random walk over the heap; at the default
    // random_page_cost the planner prefers the primary key and filters out the other shards' rows,
    // reading every row of the range once per route. SSD-like costs (transaction-local) fix that.
    await client.query(`select set_config('random_page_cost', '1.1', true)`);
    return (await client.query<OutboxRow>(sql, deltaParams(input))).rows;
  };
  return db instanceof pg.Pool ? withTransaction(db, read) : read(db);
}

/**
 * The tables emptied by a TRUNCATE in the delta (visible in `to`, not in `from`), each once, in
 * delivery order: what a batch delivered in chunks held, asked when it completes
 * (activities/drain/truncates.ts). Read through the partial index of TRUNCATE rows (migration
 * 017), so a batch of a million rows costs a probe, not a scan. Every drain shard reads them
 * (route -1).
 */
export async function truncatesInDelta(db: pg.ClientBase | pg.Pool, from: string, to: string): Promise<string[]> {
  const r = await db.query<{ tbl: string }>(
    `select tbl from pipeline.outbox
      where op = 'T' and txid >= pg_snapshot_xmin($1::pg_snapshot) and txid < pg_snapshot_xmax($2::pg_snapshot)
        and pg_visible_in_snapshot(txid, $2::pg_snapshot) and not pg_visible_in_snapshot(txid, $1::pg_snapshot)
      order by txid, id`,
    [from, to],
  );
  return [...new Set(r.rows.map((row) => row.tbl))];
}

/**
 * Parameters of DELTA_SQL: from, to, after.txid, after.id, limit, and where the range scan of part
 * two starts: after the position, but never below from's xmax. (One lower bound, as a row
 * comparison: given both a txid bound and a row comparison, the btree scan may start at the
 * lower of them, and a position at the start of a batch would make it walk the whole outbox.)
 */
export function deltaParams(input: { from: string; to: string; after: Position; limit: number }): (string | number)[] {
  const xmax = parseSnapshot(input.from).xmax;
  const afterTxid = BigInt(input.after.txid);
  const [startTxid, startId] = afterTxid >= xmax ? [input.after.txid, input.after.id] : [String(xmax), '-1'];
  return [input.from, input.to, input.after.txid, input.after.id, input.limit, startTxid, startId];
}

/** The delta query; parameters from deltaParams. */
export const DELTA_SQL = deltaSql(null);

/**
 * The delta of one drain shard (outbox/shards.ts): only rows of its routes (its partitions and -1,
 * the rows every shard reads), through the index (route, txid, id). Part two is one ordered index
 * range per route, merged (Merge Append) under the outer ORDER BY ... LIMIT, so a chunk reads about
 * `limit` rows whatever the number of routes, and none of the other shards'. Same parameters as
 * DELTA_SQL; the routes are integers written into the text (one plan per shard).
 */
export function shardDeltaSql(routes: number[]): string {
  if (routes.length === 0 || !routes.every((r) => Number.isInteger(r)))
    throw new Error('shard routes must be integers');
  return deltaSql(routes);
}

/**
 * Part one: the rows of transactions in `from`'s in-progress list that `to` sees finished; part
 * two: the txid range [xmax(from), xmax(to)) after the start position. Every row or only `routes`.
 */
function deltaSql(routes: number[] | null): string {
  const range = (route: number | null) => `(select o.* from pipeline.outbox o
        where ${route === null ? '' : `o.route = ${route} and `}(o.txid, o.id) > ($6::xid8, $7::bigint) and o.txid < pg_snapshot_xmax($2::pg_snapshot)
          and pg_visible_in_snapshot(o.txid, $2::pg_snapshot)
        order by o.txid, o.id limit $5)`;
  const partTwo = routes
    ? `(select * from (
      ${routes.map(range).join('\n      union all\n      ')}) r
        order by r.txid, r.id limit $5)`
    : range(null);
  return `
  with finished as (
    select x as t from pg_snapshot_xip($1::pg_snapshot) x
     where pg_visible_in_snapshot(x, $2::pg_snapshot) and x >= $3::xid8
  )
  select d.id::text as id, d.txid::text as txid, d.tbl, d.op, d.key, d.image, d.old_image,
         (extract(epoch from d.created_at) * 1000)::float8 as created_ms
    from (
      (select o.*
         from finished cross join lateral (
           select * from pipeline.outbox o
            where ${routes ? `o.route in (${routes.join(', ')}) and ` : ''}o.txid = finished.t and (o.txid, o.id) > ($3::xid8, $4::bigint)
            order by o.id limit $5) o
        order by o.txid, o.id limit $5)
      union all
      ${partTwo}
    ) d
   order by d.txid, d.id
   limit $5`;
}
