/**
 * Durable rebuild requests: a SKU made active or paused again after its tombstone expired has no
 * stock in the store. The apply script adds it to {p}rebuilds in the same call that writes the
 * lifecycle, so the request survives a worker killed at any point after that; the drain starts
 * `sku-rebuild-<sku>` for every pending request, and the rebuild removes it once the SKU's rows
 * are re-emitted through the outbox.
 */
import type { Redis } from 'ioredis';
import type { StoreKeys } from './keys';

export const rebuildsKey = (keys: StoreKeys) => `${keys.prefix}rebuilds`;

export async function pendingRebuilds(redis: Redis, keys: StoreKeys, max = 50): Promise<string[]> {
  return ((await redis.srandmember(rebuildsKey(keys), max)) as string[] | null) ?? [];
}

export async function rebuildDone(redis: Redis, keys: StoreKeys, sku: string): Promise<void> {
  await redis.srem(rebuildsKey(keys), sku);
}
