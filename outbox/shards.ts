/**
 * Drain shards (DRAIN_SHARDS): N drains apply changes in parallel, each its own Temporal workflow
 * chain with its own lease, lock and cursor, over a disjoint set of store partitions: shard k of N
 * owns the partitions p with p mod N = k (store/keys.ts). Every key of the store is written by
 * exactly one shard, so per-key order holds as it does with one drain, and each partition's own
 * position (store/store-position.ts) is checked against its own shard's cursor.
 *
 * Which rows a shard reads: the outbox's `route` (migration 008), set as each row is inserted: the
 * partition of the SKU a skus or inventory row writes, or -1 for the rows every partition keeps a
 * copy of (FCs, regions, orders' loads; TRUNCATEs), which every shard reads and applies to its own
 * copies. The index (route, txid, id) serves a shard's delta read (outbox/delta.ts).
 *
 * The layout (pipeline.drain_layout) says how many shards drain now, the partition count routes are
 * computed with, and a freeze snapshot while DRAIN_SHARDS changes (activities/drain/reshard.ts): a shard
 * of another count steps aside (outcome `retired`), and a frozen shard drains up to the freeze and
 * no further, so all of them can meet at one snapshot and be re-split there.
 *
 * One shard (the default) keeps the names a single drain always had.
 */
import type pg from 'pg';
import { names } from '../config';
import { parseSnapshot, snapshotCovers } from '../db/pg-snapshot';
import type { PartitionKeys, StoreKeys } from '../store/keys';
import { ConsumerCursor, readCursor } from './cursor';
import { drainLockName } from './lease';

export interface DrainShard {
  index: number;
  count: number;
  /** Its cursor row (pipeline.consumer_offsets). */
  consumer: string;
  /** Its lease (pipeline.leases). */
  lease: string;
}

export const MAX_DRAIN_SHARDS = 64;

export function drainShard(index: number, count: number): DrainShard {
  if (!Number.isInteger(count) || count < 1 || count > MAX_DRAIN_SHARDS)
    throw new RangeError(`drain shards must be an integer from 1 to ${MAX_DRAIN_SHARDS}, got ${count}`);
  if (!Number.isInteger(index) || index < 0 || index >= count)
    throw new RangeError(`drain shard index must be from 0 to ${count - 1}, got ${index}`);
  if (count === 1) return { index: 0, count: 1, consumer: names.drainConsumer, lease: names.drainLease };
  const tag = `${index}of${count}`;
  return { index, count, consumer: `${names.drainConsumer}/${tag}`, lease: `${names.drainLease}/${tag}` };
}

export const drainShards = (count: number): DrainShard[] =>
  Array.from({ length: count }, (_, k) => drainShard(k, count));

/** The shard whose cursor row this is (dead letters name it), or null if not a drain shard's. */
export function shardOfConsumer(consumer: string): DrainShard | null {
  if (consumer === names.drainConsumer) return drainShard(0, 1);
  const m = new RegExp(`^${names.drainConsumer}/(\\d+)of(\\d+)$`).exec(consumer);
  if (!m) return null;
  try {
    return drainShard(Number(m[1]), Number(m[2]));
  } catch {
    return null;
  }
}

/** The single drain of an install with one shard. */
export const SINGLE_DRAIN = drainShard(0, 1);

/** The Temporal Schedule that fires the shard's drain (one per shard). */
export const drainScheduleIdOf = (shard: DrainShard) =>
  shard.count === 1 ? names.drainScheduleId : `${names.drainScheduleId}-${shard.index}of${shard.count}`;

/** The shard's workflow id (the schedule appends the fire time). */
export const drainWorkflowIdOf = (shard: DrainShard) =>
  shard.count === 1 ? names.drainWorkflowIdPrefix : `${names.drainWorkflowIdPrefix}-${shard.index}of${shard.count}`;

/** The shard that owns a store partition. */
export const shardOfPartition = (partition: number, count: number) => partition % count;

/** The partitions a shard owns. */
export function ownedPartitions(keys: StoreKeys, shard: DrainShard): PartitionKeys[] {
  return keys.partitions.filter((p) => shardOfPartition(p.index, shard.count) === shard.index);
}

const views = new WeakMap<StoreKeys, Map<string, StoreKeys>>();

/**
 * The store as one shard sees it: its own partitions. Every function that walks `partitions`
 * (position checks, watermarks, copies of FC data, rebuilds) then stays inside the shard. The
 * whole store for one shard. Cached, so a view is one object per shard.
 */
export function shardKeys(keys: StoreKeys, shard: DrainShard): StoreKeys {
  if (shard.count === 1) return keys;
  if (shard.count > keys.partitions.length)
    throw new Error(
      `DRAIN_SHARDS=${shard.count} is more than the store's ${keys.partitions.length} partition(s): each shard owns whole partitions`,
    );
  let byShard = views.get(keys);
  if (!byShard) views.set(keys, (byShard = new Map()));
  const id = `${shard.index}/${shard.count}`;
  let view = byShard.get(id);
  if (!view) {
    view = { ...keys, partitions: ownedPartitions(keys, shard), partial: true };
    byShard.set(id, view);
  }
  return view;
}

/** The outbox routes a shard reads (its partitions' and -1), or null: one shard reads every row. */
export function shardRoutes(keys: StoreKeys, shard: DrainShard): number[] | null {
  if (shard.count === 1) return null;
  return [-1, ...ownedPartitions(keys, shard).map((p) => p.index)];
}

/** While DRAIN_SHARDS changes: the snapshot every shard drains up to, and who holds it. */
export interface DrainFreeze {
  snap: string;
  /** When it was taken (ms). */
  at: number;
  /** The re-split run that holds it (workflows/reshard.ts), or null (left by an older version). */
  owner: string | null;
  /** Its lease ran out (by the database's clock): the run is gone, the drains may lift it. */
  expired: boolean;
  /** The split has begun rewriting the store's positions: only finishing it is safe. */
  splitting: boolean;
}

export interface DrainLayout {
  shards: number;
  /** The partition count the outbox routes rows with. */
  partitions: number;
  frozen: DrainFreeze | null;
}

/** The columns of pipeline.drain_layout a layout is read from (layoutOf). */
export const LAYOUT_COLUMNS = `shards, partitions, frozen::text as frozen, (extract(epoch from frozen_at) * 1000)::float8 as frozen_at,
            frozen_by, coalesce(frozen_until < clock_timestamp(), true) as expired, splitting`;

/** A row of LAYOUT_COLUMNS; all null when read through an outer join that found no layout. */
export interface LayoutRow {
  shards: number | null;
  partitions: number | null;
  frozen: string | null;
  frozen_at: number | null;
  frozen_by: string | null;
  expired: boolean | null;
  splitting: boolean | null;
}

/** The layout of a row of LAYOUT_COLUMNS (none, or all null: one shard, one partition). */
export function layoutOf(row: LayoutRow | undefined): DrainLayout {
  if (!row || row.shards === null) return { shards: 1, partitions: 1, frozen: null };
  return {
    shards: row.shards,
    partitions: row.partitions ?? 1,
    frozen: row.frozen
      ? {
          snap: row.frozen,
          at: row.frozen_at ?? 0,
          owner: row.frozen_by,
          expired: !!row.expired,
          splitting: !!row.splitting,
        }
      : null,
  };
}

export async function readDrainLayout(db: pg.Pool | pg.ClientBase): Promise<DrainLayout> {
  const r = await db.query<LayoutRow>(`select ${LAYOUT_COLUMNS} from pipeline.drain_layout`);
  return layoutOf(r.rows[0]);
}

/**
 * Routes new outbox rows with this partition count (the store's STORE_PARTITIONS). Refused while
 * several shards drain: rows already routed with the old count would reach the wrong shard.
 */
export async function setRoutePartitions(db: pg.Pool | pg.ClientBase, partitions: number): Promise<void> {
  const r = await db.query(
    `update pipeline.drain_layout set partitions = $1, partitions_set_at = clock_timestamp()
      where partitions <> $1 and shards = 1 and frozen is null returning 1`,
    [partitions],
  );
  if (r.rowCount) return;
  const layout = await readDrainLayout(db);
  if (layout.partitions === partitions) return;
  if (layout.frozen)
    throw new Error(
      `STORE_PARTITIONS is ${partitions} but the outbox routes rows by ${layout.partitions} partitions, and the number of drain shards is being changed: wait for it to finish, then change DRAIN_SHARDS to 1 before STORE_PARTITIONS`,
    );
  throw new Error(
    `STORE_PARTITIONS is ${partitions} but ${layout.shards} drain shards route rows by ${layout.partitions} partitions: change DRAIN_SHARDS to 1 first (npm run ops -- reshard --shards 1), then STORE_PARTITIONS`,
  );
}

/**
 * Inside the caller's transaction: waits (at most `timeout`) for the lock of every shard of the
 * current layout, so no shard is between its Redis apply and its cursor commit while the caller
 * works, and returns their cursors. The layout is read again once the locks are held: a change of
 * DRAIN_SHARDS holds every lock while it re-splits.
 */
export async function lockAllShards(
  client: pg.ClientBase,
  timeout = '30s',
): Promise<{ layout: DrainLayout; shards: { shard: DrainShard; cursor: ConsumerCursor }[] }> {
  await client.query(`select set_config('lock_timeout', $1, true)`, [timeout]);
  for (;;) {
    const layout = await readDrainLayout(client);
    const shards = drainShards(layout.shards);
    for (const shard of shards)
      await client.query('select pg_advisory_xact_lock(hashtext($1))', [drainLockName(shard.consumer)]);
    const now = await readDrainLayout(client);
    if (now.shards !== layout.shards) continue; // re-split meanwhile: lock the new shards too
    return { layout: now, shards: await cursorsOf(client, now) };
  }
}

async function cursorsOf(
  db: pg.Pool | pg.ClientBase,
  layout: DrainLayout,
): Promise<{ shard: DrainShard; cursor: ConsumerCursor }[]> {
  const out = [];
  for (const shard of drainShards(layout.shards)) out.push({ shard, cursor: await readCursor(db, shard.consumer) });
  return out;
}

/**
 * Of snapshots taken one after another, the earliest: the one every other covers. What every shard
 * has applied is what the earliest of their cursors' snapshots saw.
 */
export function earliestSnapshot(snaps: string[]): string {
  if (snaps.length === 0) throw new Error('no snapshot to choose from');
  return snaps.reduce((min, s) => (snapshotCovers(parseSnapshot(min), parseSnapshot(s)) ? s : min));
}

/** Every shard's cursor of the current layout (no lock). */
export async function shardCursors(
  db: pg.Pool | pg.ClientBase,
): Promise<{ layout: DrainLayout; shards: { shard: DrainShard; cursor: ConsumerCursor }[] }> {
  const layout = await readDrainLayout(db);
  return { layout, shards: await cursorsOf(db, layout) };
}

/** The cursor of the shard that owns store partition `partition`, of shardCursors' answer. */
export function cursorOfPartition(
  cursors: Awaited<ReturnType<typeof shardCursors>>,
  partition: number,
): ConsumerCursor {
  return cursors.shards[shardOfPartition(partition, cursors.layout.shards)].cursor;
}

/**
 * The drain's last complete snapshot over all shards: every change visible in it is in the store
 * (and the time it was taken, null if unknown). One shard: its cursor's snapshot, as before shards.
 */
export async function drainAppliedSnapshot(db: pg.Pool | pg.ClientBase): Promise<{ snap: string; at: number | null }> {
  const { shards } = await shardCursors(db);
  const snap = earliestSnapshot(shards.map((s) => s.cursor.from));
  const at = shards.find((s) => s.cursor.from === snap)!.cursor.fromAt;
  return { snap, at };
}
