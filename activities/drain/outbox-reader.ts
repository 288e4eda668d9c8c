/**
 * Reads the outbox past a cursor, only below the safe horizon.
 *
 * Why this never skips a change: a transaction's xid8 is assigned before it writes its outbox
 * rows and every transaction that has not finished yet has an xid8 >= the xmin of the current
 * snapshot. So below `pg_snapshot_xmin(pg_current_snapshot())` the set of rows is final (each
 * transaction there has committed, and its rows are visible to this statement, or aborted, and
 * its rows will never exist). Reading that final set in (txid, id) order and moving the cursor
 * only through it means no row can later appear behind the cursor, whatever order transactions
 * commit in. A cursor on id alone would be wrong: a transaction that took id 10 and commits after
 * one that took id 11 would land behind a cursor already at 11.
 *
 * The cost: one long-open transaction holds the horizon back and the drain waits for it (it
 * cannot know what that transaction will write). `horizonStatus` reports it so it is never silent.
 */
import type pg from 'pg';
import type { OutboxRow } from '../../features/from-source';

export interface Cursor {
  txid: string;
  id: string;
}

export async function readCursor(client: pg.Pool | pg.ClientBase, consumer: string): Promise<Cursor> {
  const r = await client.query<Cursor>('select txid::text as txid, id::text as id from pipeline.consumer_offsets where consumer = $1', [consumer]);
  if (r.rowCount === 0) return { txid: '0', id: '0' };
  return r.rows[0];
}

export async function readOutbox(client: pg.ClientBase, cursor: Cursor, limit: number): Promise<OutboxRow[]> {
  // The horizon is computed once per statement (an init plan), from this statement's snapshot.
  const r = await client.query<OutboxRow>(
    // Note the qualified names in ORDER BY: the output columns are text and would sort as text.
    `select o.id::text as id, o.txid::text as txid, o.tbl, o.op, o.key, o.image, o.old_image, o.created_at
       from pipeline.outbox o
      where (o.txid, o.id) > ($1::xid8, $2::bigint)
        and o.txid < (select pg_snapshot_xmin(pg_current_snapshot()))
      order by o.txid, o.id
      limit $3`,
    [cursor.txid, cursor.id, limit],
  );
  return r.rows;
}

export interface HorizonStatus {
  horizon: string;
  /** Commit-pending rows waiting behind the horizon: how long the oldest has waited. */
  oldestBlockedMs: number;
  /** The oldest open transaction holding an xid (usually what holds the horizon). */
  holder: { pid: number; xactAgeMs: number; state: string; query: string } | null;
}

/** `holderAfterMs`: look up the holding backend only when rows have waited at least this long. */
export async function horizonStatus(client: pg.ClientBase, holderAfterMs = 0): Promise<HorizonStatus> {
  const r = await client.query(
    `with h as (select pg_snapshot_xmin(pg_current_snapshot()) as x)
     select h.x::text as horizon,
            coalesce((select extract(epoch from clock_timestamp() - o.created_at) * 1000
                        from pipeline.outbox o where o.txid >= h.x order by o.txid, o.id limit 1), 0) as oldest_blocked_ms
       from h`,
  );
  const status: HorizonStatus = { horizon: r.rows[0].horizon, oldestBlockedMs: Math.round(Number(r.rows[0].oldest_blocked_ms)), holder: null };
  if (status.oldestBlockedMs > 0 && status.oldestBlockedMs >= holderAfterMs) {
    const h = await client.query(
      `select pid, extract(epoch from clock_timestamp() - xact_start) * 1000 as age_ms, state, left(query, 200) as query
         from pg_stat_activity where backend_xid is not null and pid <> pg_backend_pid()
        order by age(backend_xid) desc limit 1`,
    );
    if (h.rowCount) status.holder = { pid: h.rows[0].pid, xactAgeMs: Math.round(Number(h.rows[0].age_ms)), state: h.rows[0].state, query: h.rows[0].query };
  }
  return status;
}
