/**
 * The deletion fence ({p}fence): a PostgreSQL snapshot in which every deletion the store may have
 * forgotten is visible. A deleted row is kept as a versioned tombstone ("x|version") so an older
 * write cannot bring it back; but tombstones are swept once the drain can no longer deliver an
 * older change, a discontinued SKU's key expires, and a rebuild empties everything. After that,
 * only writers that the drain's ordering does not cover could bring a deleted row back:
 *
 *   - a backfill chunk read from a snapshot older than the deletion (a lagging replica, or a
 *     chunk read before a sweep and applied after it): its fill of an absent field is refused
 *     unless its snapshot covers the fence, and the chunk is read again;
 *   - a retried dead letter or a replayed change older than the fence, aimed at an absent field:
 *     refused, and the source row is re-emitted through the outbox instead (its current state,
 *     ordered after every change of that row: activities/lifecycle/reemit-rows.ts).
 * The checks run inside the apply script (store/apply.ts), atomically with the write.
 *
 * A store emptied with no drain position (a STORE_PARTITIONS change) has a pending fence, which
 * refuses all of those writes until the drain's next batch sets it from the cursor's snapshot.
 *
 * Who moves it: the tombstone sweep before it deletes anything (the drain cursor's snapshot, which
 * sees every change the sweep may forget), so also every compaction run, which keeps it recent
 * enough for expiring keys (TOMBSTONE_TTL_S is at least three compaction intervals: checkRunSettings
 * in config/index.ts); and a rebuild. It only moves forward (store/lua/advance-fence.lua): a late
 * writer with an older snapshot changes nothing, the same xmax included.
 */
import type { PartitionKeys, StoreKeys } from './keys';
import { onEachNode, StoreRedis } from './redis-client';
import { defineScripts, runScript, SCRIPTS } from './scripts';

/**
 * Moves the fence of every partition (or of `only`) to `snapshot` (text form) unless it is
 * already further there. Returns whether it moved anywhere.
 */
export async function advanceFence(
  redis: StoreRedis,
  keys: StoreKeys,
  snapshot: string,
  only: readonly PartitionKeys[] = keys.partitions,
): Promise<boolean> {
  defineScripts(redis);
  const replies = await onEachNode(
    redis,
    only,
    (p) => p.fence,
    (pipeline, p) => void runScript(pipeline, SCRIPTS.advanceFence, 1, p.fence, snapshot),
  );
  return replies.some((moved) => moved === 1);
}

/**
 * The fence of a store emptied with no drain position to take one from (store/rebuild.ts): every
 * write a fence judges is refused (store/lua/includes/fence.lua) until the drain's next position
 * check sets the fence from its cursor's snapshot.
 */
export const FENCE_PENDING = 'pending';

/**
 * Sets the fence of `partitions` to `snapshot`, whatever it was: PostgreSQL lost history (restored
 * from a backup, failed over to a standby that was behind) and hands out transaction ids again
 * below the fence, which would refuse every fill until they caught up with it. The store is
 * being emptied, so the lost history's deletions no longer matter.
 */
export async function resetFence(
  redis: StoreRedis,
  partitions: readonly PartitionKeys[],
  snapshot: string,
): Promise<void> {
  for (const p of partitions) await redis.set(p.fence, snapshot);
}

/** Sets the fence of `partitions` pending, whatever it was. */
export async function pendFence(redis: StoreRedis, partitions: readonly PartitionKeys[]): Promise<void> {
  for (const p of partitions) await redis.set(p.fence, FENCE_PENDING);
}

/** The fence of one partition (every partition's moves together; a rebuilt one may be further). */
export async function readFence(redis: StoreRedis, partition: PartitionKeys): Promise<string | null> {
  return redis.get(partition.fence);
}
