/**
 * Durable rebuild requests: a SKU made active or paused again after its tombstone expired has no
 * stock in the store. The apply script adds it to its partition's {pp}rebuilds in the same call
 * that writes the lifecycle, so the request survives a worker killed at any point after that; the
 * drain starts `sku-rebuild-<sku>` for every pending request, and the rebuild removes it once the
 * SKU's rows are re-emitted through the outbox.
 */
import type { StoreKeys } from './keys';
import { onEachNode, StoreRedis } from './redis-client';

export async function pendingRebuilds(redis: StoreRedis, keys: StoreKeys, max = 50): Promise<string[]> {
  const replies = await onEachNode(
    redis,
    keys.partitions,
    (p) => p.rebuilds,
    (pipeline, p) => void pipeline.srandmember(p.rebuilds, max),
  );
  // Taken in turn from each partition (random members of each: SRANDMEMBER), so a partition with
  // many requests pending does not hold the others' back.
  const lists = replies.map((found) => (found as string[] | null) ?? []);
  const skus: string[] = [];
  for (let i = 0; skus.length < max && lists.some((l) => i < l.length); i++)
    for (const l of lists) if (i < l.length && skus.length < max) skus.push(l[i]!);
  return skus;
}

export async function rebuildDone(redis: StoreRedis, keys: StoreKeys, sku: string): Promise<void> {
  await redis.srem(keys.ofSku(sku).rebuilds, sku);
}
