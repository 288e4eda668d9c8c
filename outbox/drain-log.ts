/**
 * What the drain records beside its cursor, in the cursor's transaction: the snapshots it applied
 * (the landing consumer learns from them when a change reached Redis), the dead letters, and how
 * far compaction pruned the outbox (a store behind past that cannot be re-delivered).
 */
import type pg from 'pg';
import type { OutboxRow } from '../features/from-source';
import type { DrainShard } from './shards';
import { SAVE_CURSOR_SQL, saveCursorParams, type ConsumerCursor } from './cursor';
import { TAKE_LEASE_SQL } from './lease';
import { inlineParams } from '../db/inline-params';

/** A snapshot the drain applied, for its log. */
export interface AppliedSnapshot {
  shard: DrainShard;
  batch: string;
  target: { snap: string; at: number | null };
  appliedAt: number;
}

/**
 * SQL that logs an applied snapshot (the landing consumer learns from the log when a change reached
 * Redis) if $`first + 5` is true, with the parameters of logParams from $`first`.
 */
const LOG_SNAPSHOT_SQL = (first: number) => {
  const [batch, snap, at, appliedAt, shard, wanted] = [0, 1, 2, 3, 4, 5].map((i) => `$${first + i}`);
  return `insert into pipeline.drain_snapshots (shard, batch, snap, taken_at, applied_at)
     select ${shard}::int, ${batch}::bigint, ${snap}::pg_snapshot, to_timestamp(coalesce(${at}::float8, ${appliedAt}::float8) / 1000),
            to_timestamp(${appliedAt}::float8 / 1000)
      where ${wanted}::boolean
     on conflict (shard, batch) do nothing`;
};

const logParams = (a: AppliedSnapshot | null): unknown[] =>
  a ? [a.batch, a.target.snap, a.target.at, a.appliedAt, a.shard.index, true] : [null, null, null, null, null, false];

/**
 * The end of a drain pass, in its transaction and in one statement: the cursor saved, the applied
 * snapshot logged when the pass completed a batch, and the lease extended when given (taken only
 * if free, expired or ours, as acquireLease). Returned as text with its values inlined, so the
 * drain sends it with its COMMIT in one round trip (on a busy machine each costs milliseconds of
 * waiting for a core, and a pass once made five here).
 */
export function endDrainPassSql(
  consumer: string,
  next: ConsumerCursor,
  applied: AppliedSnapshot | null,
  lease: { name: string; owner: string; ttlMs: number } | null,
): string {
  return inlineParams(
    `with saved as (${SAVE_CURSOR_SQL} returning 1),
          logged as (${LOG_SNAPSHOT_SQL(12)} returning 1),
          leased as (${TAKE_LEASE_SQL(18)})
     select (select count(*) from saved) as saved`,
    [
      ...saveCursorParams(consumer, next),
      ...logParams(applied),
      ...(lease ? [lease.name, lease.owner, lease.ttlMs] : [null, null, null]),
    ],
  );
}

export async function insertDeadLetters(
  client: pg.ClientBase,
  consumer: string,
  items: { row: OutboxRow; error: string; pendingLoads: string[] | null }[],
): Promise<void> {
  // One statement for all of them. A letter of the same change already there means the change was
  // delivered again (a rewind: the store lost writes, activities/dead-letters/redelivered.ts), and
  // failed again: the letter waits again, owing what this failure left owed, whatever happened to
  // it before (retried, discarded) was lost with the store's writes. (A pass that crashed before
  // its commit left no letter.)
  await client.query(
    `insert into pipeline.dead_letters (consumer, outbox_txid, outbox_id, tbl, op, key, image, old_image, error, pending_loads)
     select $1, x.txid::xid8, x.id::bigint, x.tbl, x.op, x.key, x.image, x.old_image, x.error, x.pending_loads
       from jsonb_to_recordset($2::jsonb) as x(txid text, id text, tbl text, op text, key text, image jsonb, old_image jsonb, error text, pending_loads jsonb)
     on conflict (consumer, outbox_txid, outbox_id) do update
       set error = excluded.error, pending_loads = excluded.pending_loads, retried_at = null,
           discarded_at = null, discarded_by = null, discard_reason = null`,
    [
      consumer,
      JSON.stringify(
        items.map(({ row, error, pendingLoads }) => {
          const images = storableImages(row);
          return {
            txid: row.txid,
            id: row.id,
            tbl: row.tbl,
            op: row.op,
            key: row.key,
            image: images.image,
            old_image: images.old_image,
            error: images.changed ? `${error} (${NUL_NOTE})` : error,
            // (a counter key holds an order's fc_id, which nothing checks: NULs there too)
            pending_loads: pendingLoads?.map((k) => k.replaceAll('\u0000', '\uFFFD')) ?? null,
          };
        }),
      ),
    ],
  );
}

const NUL_NOTE = 'the image held NUL characters (\\u0000), which jsonb cannot store: kept here as U+FFFD';

/**
 * A row's images as the dead letters' jsonb can hold them. The outbox's json takes any JSON text,
 * `\u0000` included (no source row has one: PostgreSQL's text cannot hold NUL, so only a row
 * written by hand does), which jsonb refuses: the letter's insert failed, the pass was retried for
 * good, and the drain shard never moved past the row. Such characters are kept as U+FFFD.
 */
function storableImages(row: OutboxRow): { image: unknown; old_image: unknown; changed: boolean } {
  let changed = false;
  const clean = (v: unknown): unknown => {
    if (typeof v === 'string') {
      if (!v.includes('\u0000')) return v;
      changed = true;
      return v.replaceAll('\u0000', '\uFFFD');
    }
    if (Array.isArray(v)) return v.map(clean);
    if (v && typeof v === 'object')
      return Object.fromEntries(
        Object.entries(v as Record<string, unknown>).map(([k, x]) => [clean(k) as string, clean(x)]),
      );
    return v;
  };
  const image = clean(row.image);
  const old_image = clean(row.old_image);
  return { image, old_image, changed };
}

/**
 * Outbox rows below this txid may have been pruned (activities/compaction/prune-outbox.ts). Read
 * FOR SHARE, inside the transaction that acts on it (a drain pass that rewinds its cursor): a
 * prune computes its floor from the cursors only once it holds the row FOR UPDATE, so it waits
 * for that commit and sees the rewound cursor, and one that set the floor first is seen here.
 */
export async function readOutboxFloor(client: pg.ClientBase): Promise<bigint> {
  const r = await client.query(`select below::text as below from pipeline.outbox_floor for share`);
  return BigInt(r.rows[0]?.below ?? '0');
}
