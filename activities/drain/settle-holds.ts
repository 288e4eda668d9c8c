/**
 * Holds no letter names, released by the drain once a minute. A drain pass that died between
 * writing a change's hold (store/held.ts: written before the apply call, so no Redis file has the
 * position without it) and committing its dead letter leaves a hold behind; when the change is
 * delivered again and applies, nothing waits for it, but the hold keeps its SKU, FC or region
 * stale. Release (store/held.ts, `release`) lets it go once it is older than HELD_SETTLE_MS and no
 * waiting letter names it, the same call a retry or a discard makes and the guard against a Redis
 * back from a file older than a retry included. Compaction does it too, but hourly: this keeps
 * such a subject stale for at most about HELD_SETTLE_MS plus a minute, not up to an hour more.
 */
import type pg from 'pg';
import type { StoreKeys } from '../../store/keys';
import type { StoreRedis } from '../../store/redis-client';
import { HELD_SETTLE_MS } from '../../store/held';
import { releaseHeldBy } from '../dead-letters';

/** How often a worker's drain asks (the question reads the holds, and the waiting letters when one is old). */
export const SETTLE_HOLDS_EVERY_MS = 60_000;

/**
 * A settler for one worker's drain activities: call it after each drain activity; it asks at most
 * once per SETTLE_HOLDS_EVERY_MS. Never throws: a failed question is logged and asked again next
 * time (the drain's own work is done and committed).
 */
export function holdSettler(deps: {
  pool: pg.Pool;
  redis: StoreRedis;
  /** The whole store (every partition), not one shard's. */
  keys: StoreKeys;
  log?: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
}): () => Promise<number> {
  let nextAt = 0;
  // The old holds found still named by a waiting letter last time: asked about again only when
  // another one is old (a letter waiting for days keeps its hold, and the question reads every
  // waiting letter: without this, once a minute for as long as it waits).
  let kept = new Set<string>();
  return async () => {
    if (Date.now() < nextAt) return 0;
    nextAt = Date.now() + SETTLE_HOLDS_EVERY_MS;
    try {
      if ((await oldHolds(deps)).every((h) => kept.has(h))) return 0;
      const released = await releaseHeldBy(deps, []);
      kept = new Set(await oldHolds(deps));
      if (released)
        deps.log?.(
          'info',
          `released ${released} hold(s) no waiting dead letter names (a drain pass that died before its letter's commit)`,
          {
            released,
          },
        );
      return released;
    } catch (err) {
      deps.log?.(
        'warn',
        `could not check for holds no dead letter names (asked again in a minute): ${(err as Error).message}`,
      );
      return 0;
    }
  };
}

/** Every hold older than HELD_SETTLE_MS, as partition, field and value (a hold written again is another). */
async function oldHolds(deps: { redis: StoreRedis; keys: StoreKeys }): Promise<string[]> {
  const oldest = Date.now() - HELD_SETTLE_MS;
  const read = await Promise.all(deps.keys.partitions.map((p) => deps.redis.hgetall(p.held)));
  return read.flatMap((held, i) =>
    Object.entries(held)
      .filter(([, at]) => Number(at) < oldest)
      .map(([field, at]) => `${i}\u0000${field}\u0000${at}`),
  );
}
