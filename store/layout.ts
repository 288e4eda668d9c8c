/**
 * The store's layout, checked at worker start:
 *   - a store written by an older layout (its epoch key has the old name) is emptied, loudly, and
 *     rebuilt by `backfill-auto`: reads say stale until then, and no old field (layout 1 kept the
 *     lifecycle in "_", a valid FC id) is ever misread;
 *   - a store built with another number of partitions (STORE_PARTITIONS changed) is emptied the
 *     same way: its SKUs hash to other partitions now. A store with no record of its partition
 *     count predates partitions, so it has one.
 */
import type { StoreKeys } from './keys';
import { STORE_LAYOUT } from './keys';
import { rebuildStore } from './rebuild';
import { scanKeys, StoreRedis } from './redis-client';
import { logger } from '../log/logger';

async function storeHasKeys(redis: StoreRedis, keys: StoreKeys, pattern: string): Promise<boolean> {
  for await (const page of scanKeys(redis, pattern)) if (page.some((k) => k !== keys.partitionCount)) return true;
  return false;
}

export async function upgradeStoreLayout(
  redis: StoreRedis,
  keys: StoreKeys,
  log: (m: string) => void = (m) => logger('store').warn(m),
): Promise<boolean> {
  const want = keys.partitions.length;
  const recorded = await redis.get(keys.partitionCount);
  let rebuilt = false;
  if ((await redis.exists(keys.legacyEpoch)) === 1 && want === 1) {
    log(
      `online store under '${keys.prefix}' has an older layout: emptying it; backfill-auto rebuilds it as layout ${STORE_LAYOUT} (reads are stale meanwhile)`,
    );
    await rebuildStore(redis, keys, null);
    rebuilt = true;
  } else {
    // No record: a store from before partitions (one, untagged), or the record alone was lost (its
    // node failed over): a store with tagged keys is never taken for a one-partition store.
    const had =
      recorded !== null
        ? Number(recorded)
        : (await storeHasKeys(redis, keys, `${keys.prefix}{*`))
          ? want
          : (await storeHasKeys(redis, keys, `${keys.prefix}*`))
            ? 1
            : want;
    if (had !== want) {
      log(
        `online store under '${keys.prefix}' was built with ${had} partition(s), STORE_PARTITIONS is now ${want}: emptying it; backfill-auto rebuilds it (reads are stale meanwhile)`,
      );
      await rebuildStore(redis, keys, null);
      rebuilt = true;
    }
  }
  if (recorded !== String(want)) await redis.set(keys.partitionCount, String(want));
  return rebuilt;
}
