/**
 * Empties the online store so a backfill can rebuild it: the epoch goes first (reads say stale
 * from that moment, and the drain starts `backfill-auto` on its next batch), then every key under
 * the prefix, then the store's position starts again from the cursor's.
 */
import type { Redis } from 'ioredis';
import type { StoreKeys } from './keys';
import { DeliveryPosition, resetStorePosition } from './store-position';

/** `cursorLast`: the drain cursor's last delivered position (null: the next batch supplies it). */
export async function rebuildStore(redis: Redis, keys: StoreKeys, cursorLast: DeliveryPosition | null): Promise<number> {
  await redis.del(keys.epoch, keys.legacyEpoch);
  let removed = 0;
  const stream = redis.scanStream({ match: `${keys.prefix}*`, count: 1000 });
  for await (const batch of stream as AsyncIterable<string[]>) {
    if (batch.length) removed += await redis.unlink(...batch);
  }
  if (cursorLast) await resetStorePosition(redis, keys, cursorLast);
  return removed;
}
