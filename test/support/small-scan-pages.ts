/**
 * A Redis client whose SCAN pages hold 5 keys: a store rebuild through it empties the store in
 * hundreds of round trips, between which readers on the same event loop get their turns, so the
 * tests read every intermediate state of the store, whatever order SCAN returns keys in.
 */
import type { StoreRedis } from '../../store/redis-client';

export function smallScanPages<T extends object>(redis: T): T {
  return new Proxy(redis, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target);
      if (prop === 'scanStream')
        return (opts: Record<string, unknown>) => (v as (o: unknown) => unknown).call(target, { ...opts, count: 5 });
      if (prop === 'nodes')
        return (...a: unknown[]) => (v as (...a: unknown[]) => object[]).apply(target, a).map(smallScanPages);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

export const withSmallScanPages = (redis: StoreRedis): StoreRedis => smallScanPages(redis);
