/**
 * The store's layout version. A store written by an older layout (its epoch key has the old
 * name) is emptied at worker start, loudly, and rebuilt by `backfill-auto`: reads say stale until
 * then, and no old field (layout 1 kept the lifecycle in "_", a valid FC id) is ever misread.
 */
import type { Redis } from 'ioredis';
import { StoreKeys, STORE_LAYOUT } from './keys';
import { rebuildStore } from './rebuild';

export async function upgradeStoreLayout(
  redis: Redis,
  keys: StoreKeys,
  log: (m: string) => void = console.warn,
): Promise<boolean> {
  if ((await redis.exists(keys.legacyEpoch)) === 0) return false;
  log(
    `online store under '${keys.prefix}' has an older layout: emptying it; backfill-auto rebuilds it as layout ${STORE_LAYOUT} (reads are stale meanwhile)`,
  );
  await rebuildStore(redis, keys, null);
  return true;
}
