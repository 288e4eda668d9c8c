/**
 * What the drain records beside its cursor, in the cursor's transaction: the snapshots it applied
 * (the landing consumer learns from them when a change reached Redis), the dead letters, and how
 * far compaction pruned the outbox (a store behind past that cannot be re-delivered).
 */
import type pg from 'pg';
import type { OutboxRow } from '../features/from-source';
import type { DrainShard } from './shards';

/** The drain's log of applied snapshots: the landing consumer learns from it when a change reached Redis. */
export async function logAppliedSnapshot(
  client: pg.ClientBase,
  shard: DrainShard,
  batch: string,
  target: { snap: string; at: number | null },
  appliedAt: number,
): Promise<void> {
  await client.query(
    `insert into pipeline.drain_snapshots (shard, batch, snap, taken_at, applied_at)
     values ($5, $1, $2::pg_snapshot, to_timestamp(coalesce($3::float8, $4::float8) / 1000), to_timestamp($4::float8 / 1000))
     on conflict (shard, batch) do nothing`,
    [batch, target.snap, target.at, appliedAt, shard.index],
  );
}

export async function insertDeadLetters(
  client: pg.ClientBase,
  consumer: string,
  items: { row: OutboxRow; error: string; pendingLoads: string[] | null }[],
): Promise<void> {
  // One statement for all of them; re-processing the same rows after a crash adds nothing.
  await client.query(
    `insert into pipeline.dead_letters (consumer, outbox_txid, outbox_id, tbl, op, key, image, old_image, error, pending_loads)
     select $1, x.txid::xid8, x.id::bigint, x.tbl, x.op, x.key, x.image, x.old_image, x.error, x.pending_loads
       from jsonb_to_recordset($2::jsonb) as x(txid text, id text, tbl text, op text, key text, image jsonb, old_image jsonb, error text, pending_loads jsonb)
     on conflict (consumer, outbox_txid, outbox_id) do nothing`,
    [
      consumer,
      JSON.stringify(
        items.map(({ row, error, pendingLoads }) => ({
          txid: row.txid,
          id: row.id,
          tbl: row.tbl,
          op: row.op,
          key: row.key,
          image: row.image,
          old_image: row.old_image,
          error,
          pending_loads: pendingLoads,
        })),
      ),
    ],
  );
}

/** Outbox rows below this txid may have been pruned (activities/compaction/prune-outbox.ts). */
export async function readOutboxFloor(client: pg.ClientBase): Promise<bigint> {
  const r = await client.query(`select below::text as below from pipeline.outbox_floor`);
  return BigInt(r.rows[0]?.below ?? '0');
}
