/**
 * Empties the online store so a backfill can rebuild it: the epoch goes first (reads say stale
 * from that moment, and the drain starts `backfill-auto` on its next batch), then every key under
 * the prefix, then the store's position starts again from the cursor's.
 */
import type { Redis } from 'ioredis';
import type { StoreKeys } from './keys';
import { advanceFence } from './fence';
import { DeliveryPosition, resetStorePosition, StorePosition } from './store-position';

/**
 * `cursor`: the drain cursor's last delivered position and its snapshot (null: the next batch
 * supplies the position). The snapshot becomes the deletion fence: a backfill chunk read from a
 * replica still behind it could otherwise fill in rows deleted before the rebuild.
 */
export async function rebuildStore(
  redis: Redis,
  keys: StoreKeys,
  cursor: { last: DeliveryPosition; from: string } | null,
  claim: StorePosition['claimed'] = null,
): Promise<number> {
  await redis.del(keys.epoch, keys.legacyEpoch);
  let removed = 0;
  const stream = redis.scanStream({ match: `${keys.prefix}*`, count: 1000 });
  for await (const batch of stream as AsyncIterable<string[]>) {
    if (batch.length) removed += await redis.unlink(...batch);
  }
  if (cursor) {
    await advanceFence(redis, keys, cursor.from);
    await resetStorePosition(redis, keys, cursor.last, claim);
  }
  return removed;
}
