/**
 * Full backfill: rebuilds the online store from the source (a new store, a new feature, disaster
 * recovery), chunked by key range, under the trigger capture on the primary (snapshot.ts,
 * snapshotSource: a standby's snapshots cannot be compared with the outbox).
 *
 * Why changes committed meanwhile are neither lost nor overwritten: each chunk is read in one
 * snapshot, registered in the store, and its values are written only into fields that are
 * absent, tagged with that snapshot. A change the drain applies later wins over such a value
 * exactly when the snapshot did not see the change's transaction (store/apply.ts); a value the
 * drain already wrote is never touched by the backfill.
 *
 * The per-FC daily load is a sum of deltas, so it cannot be filled field by field: it is
 * recomputed whole while holding the drain's lock, from a snapshot that has seen every change up
 * to the drain cursor (checked: it sees every transaction the drain's snapshot saw). The counter
 * records the drain's next delivery position and the snapshot, so deltas already counted (by
 * position, or because the snapshot saw their transaction) are skipped.
 */
import { onEachNode, scanKeys, StoreRedis } from '../../store/redis-client';
import type pg from 'pg';
import { dayStartIso, loadWindowStart, WINDOW_LOADS_SQL } from '../../features/definitions';
import { featureUpdatesFrom, MalformedChange } from '../../features/from-source';
import { applyOps, StoreOp, toBackfillOps, ApplyOptions, STORE_BEHIND_REPLY } from '../../store/apply';
import { PartitionKeys, StoreKeys } from '../../store/keys';
import { setEpoch } from '../../store/watermark';
import { defineScripts, runScript, SCRIPTS } from '../../store/scripts';
import { DeliveryPosition, readPartitionPositions, readStorePosition } from '../../store/store-position';
import { formatSnapshot, parseSnapshot, PgSnapshot, snapshotCovers } from '../../db/pg-snapshot';
import { withTransaction } from '../../db/transaction';
import { ConsumerCursor, lockAllShards, shardKeys } from '../../outbox';
import { registerSnapshot, Snapshot, withSnapshot } from './snapshot';
import { estimateTableRows } from './row-estimate';

/** A chunk read from a snapshot older than the deletion fence (store/fence.ts), or before its partition was emptied: retry it. */
export class StaleSnapshotError extends Error {
  override name = 'StaleSnapshotError';
}

export const BACKFILL_TABLES = ['fulfillment_centers', 'region_fc', 'skus', 'inventory'] as const;
export type BackfillTable = (typeof BACKFILL_TABLES)[number];

const KEY_COLUMNS: Record<BackfillTable, string[]> = {
  fulfillment_centers: ['fc_id'],
  region_fc: ['region', 'fc_id'],
  skus: ['sku_id'],
  inventory: ['sku_id', 'fc_id'],
};

export interface ChunkResult {
  rows: number;
  /** Key of the last row read; the next chunk starts after it. null when the table is done. */
  last: string[] | null;
  filled: number;
}

export async function backfillChunk(
  source: pg.Pool,
  redis: StoreRedis,
  keys: StoreKeys,
  opts: ApplyOptions,
  input: { table: BackfillTable; after: string[] | null; limit: number },
): Promise<ChunkResult> {
  const cols = KEY_COLUMNS[input.table];
  const keyList = cols.join(', ');
  const where = input.after ? `where (${keyList}) > (${cols.map((_, i) => `$${i + 2}`).join(', ')})` : '';
  const checkedOf = await positionsBeforeRead(redis, keys);
  const { rows, snapshot } = await withSnapshot(source, async (client, snap) => {
    const r = await client.query(
      `select to_jsonb(t) as image from shop.${input.table} t ${where} order by ${keyList} limit $1`,
      [input.limit, ...(input.after ?? [])],
    );
    return { rows: r.rows.map((x) => x.image as Record<string, unknown>), snapshot: snap };
  });
  if (rows.length === 0) return { rows: 0, last: null, filled: 0 };
  const filled = await fillFromSnapshot(redis, keys, { ...opts, checkedOf }, input.table, rows, snapshot);
  const lastRow = rows[rows.length - 1];
  return { rows: rows.length, last: rows.length < input.limit ? null : cols.map((c) => String(lastRow[c])), filled };
}

/**
 * Each partition's position, read before a chunk's source read, for its fill to be checked against
 * (ApplyOptions.checkedOf). A partition emptied from outside in between (FLUSHDB, a Redis back with
 * no file) lost the tombstones of deletions the read may predate, and with them the fence that
 * would refuse their rows: the fill is refused (FBBEHIND, StaleSnapshotError) and the chunk read
 * again. One with no position then (a new store) is not checked.
 */
export async function positionsBeforeRead(
  redis: StoreRedis,
  keys: StoreKeys,
): Promise<(p: PartitionKeys) => DeliveryPosition | null> {
  const positions = await readPartitionPositions(redis, keys);
  const before = new Map(keys.partitions.map((p, i) => [p.index, positions[i]!.applied]));
  return (p) => before.get(p.index) ?? null;
}

/**
 * Writes source rows read at `snapshot` into the fields the store does not hold, tagged with the
 * snapshot. Returns how many fields it filled.
 */
export async function fillFromSnapshot(
  redis: StoreRedis,
  keys: StoreKeys,
  opts: ApplyOptions,
  table: BackfillTable,
  rows: Record<string, unknown>[],
  snapshot: Snapshot,
): Promise<number> {
  const tag = await registerSnapshot(redis, keys, snapshot);
  const ops: StoreOp[] = [];
  rows.forEach((image, i) => {
    try {
      for (const u of featureUpdatesFrom({
        id: '1',
        txid: '0',
        tbl: table,
        op: 'R',
        key: '',
        image,
        old_image: null,
        created_ms: Date.now(),
      })) {
        ops.push(...toBackfillOps(keys, u, tag, i));
      }
    } catch (err) {
      if (!(err instanceof MalformedChange)) throw err; // a source row the contract forbids: skip it
    }
  });
  const applied = await applyOps(redis, keys, ops, { ...opts, mode: 'backfill' }).catch((err: Error) => {
    throw STORE_BEHIND_REPLY.test(err.message)
      ? new StaleSnapshotError(
          `backfill: a store partition lost its data after chunk of ${table} was read at snapshot ${snapshot.text} (Redis emptied or restarted from an older file); nothing written, the chunk will be read again`,
        )
      : err;
  });
  if (applied.failures.length)
    throw new Error(
      `backfill: StoreRedis rejected ${applied.failures.length} value(s), first: ${applied.failures[0].error}`,
    );
  // The chunk's snapshot does not see every deletion the store has forgotten (read from a replica
  // that is behind, or before a tombstone sweep): its fills of absent fields were refused, the
  // rest is harmless. Raised as retryable: the retry reads the chunk again, at a newer snapshot.
  if (applied.fenced.length)
    throw new StaleSnapshotError(
      `backfill: chunk of ${table} read at snapshot ${snapshot.text} is older than the store's deletion fence (a replica behind the primary?); ${applied.fenced.length} fill(s) refused, the chunk will be read again`,
    );
  return applied.applied;
}

/**
 * Recomputes every FC's daily load inside the window the store keeps (features/definitions.ts,
 * loadWindowStart), under every drain shard's lock:
 * each partition's copy of a counter gets the position of its own shard's next delivery.
 */
export async function backfillLoads(
  primary: pg.Pool,
  source: pg.Pool,
  redis: StoreRedis,
  keys: StoreKeys,
  opts: ApplyOptions,
): Promise<{ counters: number; cursor: ConsumerCursor }> {
  return withTransaction(primary, async (lock) => {
    const { shards } = await lockAllShards(lock);
    // Per shard, everything it has applied: its last complete snapshot, plus the rows of the batch
    // in progress up to its position (all visible in that batch's target). A batch claimed in the
    // store but not committed (a crash) may have applied more: its target.
    const applied: PgSnapshot[] = [];
    const positions = new Map<PartitionKeys, string>();
    const delivered = new Map<PartitionKeys, DeliveryPosition>();
    for (const { shard, cursor } of shards) {
      const view = shardKeys(keys, shard);
      const claim = (await readStorePosition(redis, view)).claimed;
      applied.push(parseSnapshot(claim && claim.batch === cursor.batch ? claim.target : (cursor.to ?? cursor.from)));
      // The counter's position: the shard's next delivery (batch in progress, position inside it).
      for (const p of view.partitions) {
        positions.set(p, `${cursor.batch}:${cursor.position.txid}:${cursor.position.id}`);
        delivered.set(p, cursor.last);
      }
    }
    const result = await withSnapshot(source, async (client, snap) => {
      const behind = applied.find((a) => !snapshotCovers(parseSnapshot(snap.text), a));
      if (behind) {
        throw new Error(
          `the source snapshot (${snap.text}) has not yet seen every change the drain applied (${formatSnapshot(behind)}); a replica is behind — retrying`,
        );
      }
      // the days the store keeps (whole UTC days, so no counter in the window is a partial sum)
      const fromDay = loadWindowStart(Date.now(), opts.loadTtlS);
      // (every FC and day the window's orders name, 0 where none counts: see WINDOW_LOADS_SQL)
      const r = await client.query<{ fc_id: string; day: string; load: string }>(WINDOW_LOADS_SQL, [
        dayStartIso(fromDay),
      ]);
      return { rows: r.rows, snap, fromDay };
    });
    const tag = (await registerSnapshot(redis, keys, result.snap)).slice(1);
    const ops = await loadRefillOps(redis, keys, result, tag, (p) => positions.get(p)!);
    const counters = ops.length - keys.partitions.length;
    // A partition below its shard's cursor (Redis back from an older file, the drain not yet
    // rewound) refuses, atomically: stamped with the cursor's position, its counters would skip the
    // deltas the rewound drain delivers again, under lower positions (an FC full read as free).
    const written = await applyOps(redis, keys, ops, {
      ...opts,
      mode: 'backfill',
      checkedOf: (p) => delivered.get(p) ?? null,
    }).catch((err: Error) => {
      throw STORE_BEHIND_REPLY.test(err.message)
        ? new Error(
            `backfill: a store partition is behind the drain cursor (Redis lost writes); the loads are refilled once the drain has caught it up — retrying`,
          )
        : err;
    });
    if (written.failures.length)
      throw new Error(`backfill: StoreRedis rejected a load counter: ${written.failures[0].error}`);
    return { counters, cursor: shards[0].cursor };
  });
}

/**
 * The ops of a refill of the loads read from snapshot `tag`: every partition's copy of each counter
 * the window's orders name, 0 for each counter the store holds that they do not, then op Z.
 */
async function loadRefillOps(
  redis: StoreRedis,
  keys: StoreKeys,
  refill: { rows: { fc_id: string; day: string; load: string }[]; fromDay: string },
  tag: string,
  positionOf: (p: PartitionKeys) => string,
): Promise<StoreOp[]> {
  // every partition's copy of the counter (store/keys.ts)
  const ops: StoreOp[] = refill.rows.flatMap((r, i) =>
    keys.partitions.map((p): StoreOp => ({
      kind: 'loadSet',
      key: p.load(r.fc_id, r.day),
      count: r.load,
      position: positionOf(p),
      snapshot: tag,
      source: i,
    })),
  );
  // Counters the store has but the source sums to nothing (every order cancelled): zero them.
  // (Op Z does it for the counters in the partition's load index; a store written before the
  // index existed holds counters outside it.)
  const wanted = new Set(ops.map((o) => o.key));
  for await (const found of scanKeys(redis, keys.pattern('l')))
    for (const k of found)
      if (!wanted.has(k))
        ops.push({
          kind: 'loadSet',
          key: k,
          count: '0',
          position: positionOf(keys.ofKey(k)),
          snapshot: tag,
          source: -1,
        });
  // Last, in each partition (after the sets, which it leaves alone: at its position, with its
  // snapshot): the counters not set above are 0 as of the snapshot, those the store
  // holds now and those a waiting delta of a change the snapshot saw would make (op Z). Before
  // the sets, it would read a named FC 0 until its set came, maybe a call later.
  for (const p of keys.partitions)
    ops.push({
      kind: 'loadsComplete',
      key: p.loadIndex,
      from: refill.fromDay,
      position: positionOf(p),
      snapshot: tag,
      source: -1,
    });
  return ops;
}

/** Row counts per table, for progress (row-estimate.ts: statistics when they can say, else a count). */
export async function backfillPlan(source: pg.Pool): Promise<Record<BackfillTable, number>> {
  return estimateTableRows(source, BACKFILL_TABLES);
}

/**
 * At the start of a backfill: its id goes into every partition, with no step done yet. A
 * partition rebuilt while the backfill runs (emptied after a failover, say) loses it, and with it
 * the rows already filled.
 */
export async function markBackfillStart(redis: StoreRedis, keys: StoreKeys, marker: string): Promise<void> {
  await onEachNode(
    redis,
    keys.partitions,
    (p) => p.backfill,
    // one command per partition (the helper maps one reply to each), and atomic: a Redis restored
    // to any point holding the marker holds the step too, and no step of another backfill runs
    // between the two
    (pipeline, p) => void pipeline.mset(p.backfillStep, '0', p.backfill, marker),
  );
}

/**
 * A Redis that came back holding fewer of this backfill's writes than it acknowledged (restarted
 * from an older file, a replica promoted behind its primary): the steps after its last one are
 * missing, so the backfill starts again.
 */
export class BackfillWritesLost extends Error {
  override name = 'BackfillWritesLost';
}

/**
 * After a step's writes (steps numbered 1, 2, … in order: chunks, then the loads), records it in
 * every partition still carrying this backfill (store/lua/backfill-step.lua). Throws
 * BackfillWritesLost when a partition is more than one step behind.
 */
export async function recordBackfillStep(
  redis: StoreRedis,
  keys: StoreKeys,
  marker: string,
  step: number,
): Promise<void> {
  defineScripts(redis);
  const replies = await onEachNode(
    redis,
    keys.partitions,
    (p) => p.backfill,
    (pipeline, p) => void runScript(pipeline, SCRIPTS.backfillStep, 2, p.backfill, p.backfillStep, marker, step),
  );
  const behind = replies.flatMap((r, i) => (r === 0 ? [i] : []));
  if (behind.length)
    throw new BackfillWritesLost(
      `backfill step ${step}: store partitions ${behind.join(', ')} lost the writes of earlier steps (Redis came back from an older state); the backfill starts again`,
    );
}

/**
 * Marks the store complete: the epoch of every partition that still holds this backfill's marker.
 * A partition rebuilt meanwhile stays incomplete (reads of its SKUs stale): the drain sees it and
 * starts another backfill. Returns the partitions left incomplete.
 */
export async function finishBackfill(
  redis: StoreRedis,
  keys: StoreKeys,
  epoch: string,
  marker = '',
  /** The steps the backfill recorded (recordBackfillStep): a partition holding fewer stays incomplete. */
  steps?: number,
): Promise<{ incomplete: number[] }> {
  if (!marker) {
    await setEpoch(redis, keys, epoch);
    return { incomplete: [] };
  }
  defineScripts(redis);
  const replies = await onEachNode(
    redis,
    keys.partitions,
    (p) => p.epoch,
    (pipeline, p) =>
      void runScript(
        pipeline,
        SCRIPTS.finishBackfill,
        3,
        p.epoch,
        p.backfill,
        p.backfillStep,
        epoch,
        marker,
        steps === undefined ? '' : steps,
      ),
  );
  const incomplete: number[] = [];
  replies.forEach((set, i) => set !== 1 && incomplete.push(i));
  return { incomplete };
}
