/**
 * Empties the online store, or some of its partitions, so a backfill can rebuild it: each
 * partition's position is marked "rebuilding" first (a Redis back from a file written while the
 * rebuild ran shows it, and the drain rebuilds again: store/lua/check-position.lua), then the marks
 * of any backfill under way and the epochs go (reads say stale from that moment, and the drain
 * starts `backfill-auto` on its next batch), then every key of those partitions but their
 * positions and deletion fences (set first: store/fence.ts), then the marks again (a backfill begun meanwhile), then their position starts again
 * from the cursor's, which removes the "rebuilding" mark in the same step.
 * A backfill refills every partition; it writes only fields that are absent, so the partitions
 * that kept their data are not changed by it.
 */
import type { PartitionKeys, StoreKeys } from './keys';
import { advanceFence, pendFence, resetFence } from './fence';
import { pipelineByNode, scanKeys, StoreRedis } from './redis-client';
import { FIELD } from './names';
import { DeliveryPosition, resetStorePosition, StorePosition } from './store-position';

/**
 * `cursor`: the drain cursor's last delivered position and its snapshots (null: the next batch
 * supplies the position), and what the chunk that reached it delivered (`chunk`: a TRUNCATE's
 * emptying after its batch's last chunk, FIELD.appliedChunk). Its batch's target when one is in progress (`to`: it sees the rows its
 * earlier chunks delivered), else its start (`from`), becomes the deletion fence: a backfill chunk
 * read from a replica still behind it could otherwise fill in rows deleted before the rebuild. The
 * batch in progress (`batch`, with `to`) is recorded (FIELD.fencedBatch): its later chunks may hold
 * older images of rows its earlier chunks deleted, and the fence judges their writes too.
 * `only`: the partitions to rebuild (default: the whole store, every key under the prefix).
 * `historyLost`: PostgreSQL lost commits the store had seen (the store is ahead): the fence is set
 * to the cursor's snapshot even where it was further (store/fence.ts, resetFence).
 */
export async function rebuildStore(
  redis: StoreRedis,
  keys: StoreKeys,
  cursor: { last: DeliveryPosition; from: string; to?: string | null; chunk?: string; batch?: string } | null,
  claim: StorePosition['claimed'] = null,
  only?: readonly PartitionKeys[],
  historyLost = false,
): Promise<number> {
  // a drain shard's view of the store rebuilds its own partitions, never the others'
  only ??= keys.partial ? keys.partitions : undefined;
  const partitions = only ?? keys.partitions;
  // The first write to each partition: on every Redis file written from here until the position is
  // reset, the partition shows a rebuild that has not ended (each position hash lives on its
  // partition's node, so this holds on a cluster too, node by node).
  for (const p of partitions) await redis.hset(p.pos, FIELD.rebuilding, '1');
  // The fence before anything is forgotten: the tombstones about to go no longer guard against an
  // older image of their rows, the fence does (kept through the unlinks below). With no cursor,
  // no snapshot is known to see every deletion: pending, which refuses those writes until the
  // drain's next batch sets it (store/lua/check-position.lua).
  const fence = cursor && (cursor.to ?? cursor.from);
  if (!fence) await pendFence(redis, partitions);
  else if (historyLost) await resetFence(redis, partitions, fence);
  else await advanceFence(redis, keys, fence, partitions);
  // Then the marks of any backfill filling these partitions, then the epochs. A read
  // checks its partition's epoch in the same script call that reads the data
  // (serving/badge-reader.ts), so from here on no read of these partitions says fresh, whatever
  // order the other keys disappear in. The marks go first: a backfill finishing while the keys
  // are unlinked then finds none and leaves the partition incomplete. Finding its mark, it would
  // set the epoch again over a partition being emptied (store/lua/finish-backfill.lua), and the
  // scan below, which need not return a key created after it began, could leave it there.
  await unmark(redis, partitions);
  const kept = new Set([keys.partitionCount, ...partitions.flatMap((p) => [p.pos, p.fence])]);
  if (!only) {
    await redis.del(keys.legacyEpoch);
    // ...and the epochs of any other partition count (a STORE_PARTITIONS change): a reader still
    // configured with the old count reads those
    await unlinkAll(redis, kept, [`${keys.prefix}epoch*`, `${keys.prefix}{*}epoch*`]);
  }
  // (A store of one partition has no hash tag: its partition's prefix is the store's.)
  const removed = await unlinkAll(redis, kept, only ? partitions.map((p) => `${p.prefix}*`) : [`${keys.prefix}*`]);
  // Again: a backfill that began while the keys were unlinked marked the partitions, and some of
  // its writes may have been unlinked after; it must not mark them complete.
  await unmark(redis, partitions);
  if (cursor) {
    // a batch in progress: its later chunks' writes into absent fields are judged by the fence
    const inProgress = cursor.to && cursor.batch ? cursor.batch : null;
    await resetStorePosition(redis, partitions, cursor.last, claim, cursor.chunk ?? null, inProgress);
  } else {
    // no position: the next batch starts the partitions from PostgreSQL's
    for (const p of partitions) await redis.del(p.pos);
  }
  return removed;
}

/** Removes the backfill marks (the backfill's id, its last step), then the epochs: incomplete, and no backfill begun before may mark them complete. */
async function unmark(redis: StoreRedis, partitions: readonly PartitionKeys[]): Promise<void> {
  for (const p of partitions) {
    await redis.del(p.backfill);
    await redis.del(p.backfillStep);
    await redis.del(p.epoch);
  }
}

/**
 * Unlinks every key matching the patterns but `kept`: the partition count (it describes the layout,
 * not the data), the positions of the partitions rebuilt (their "rebuilding" mark must outlive
 * every other key: the position is reset at the end instead) and their fences (a write racing
 * the unlinks is judged by it).
 */
async function unlinkAll(redis: StoreRedis, kept: Set<string>, patterns: string[]): Promise<number> {
  let removed = 0;
  for (const pattern of patterns) {
    for await (const page of scanKeys(redis, pattern)) {
      const doomed = page.filter((k) => !kept.has(k));
      const replies = await pipelineByNode(
        redis,
        doomed,
        (k) => k,
        (pipeline, k) => void pipeline.unlink(k),
      );
      for (const [err, n] of replies) {
        if (err) throw err;
        removed += n as number;
      }
    }
  }
  return removed;
}
