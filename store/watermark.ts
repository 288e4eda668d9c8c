/**
 * The freshness watermark kept next to the features, so readers can tell how fresh what they read
 * is without asking the pipeline:
 *   sourceMs    newest source change time applied (ms since epoch)
 *   appliedAt   when the drain last applied a batch
 *   caughtUpAt  when the drain last confirmed that nothing committed was left unapplied
 *
 * The watermark is only written while the store is complete ({p}epoch exists): after data loss
 * the meta hash is gone too, reads say stale, and they stay stale until the backfill that
 * restores the store sets the epoch again. Both writers return whether the epoch was there.
 */
import type { Redis } from 'ioredis';
import type { StoreKeys } from './keys';

export interface Watermark {
  sourceMs: number | null;
  appliedAt: number | null;
  caughtUpAt: number | null;
}

const GATED_HSET = `
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
`;

type WithGate = Redis & { fbGatedHset(numKeys: number, ...args: (string | number)[]): Promise<number> };

async function gatedHset(redis: Redis, keys: StoreKeys, fields: (string | number)[]): Promise<boolean> {
  const r = redis as WithGate;
  if (typeof r.fbGatedHset !== 'function') redis.defineCommand('fbGatedHset', { lua: GATED_HSET });
  return (await r.fbGatedHset(2, keys.meta, keys.epoch, ...fields)) === 1;
}

/** Returns false when the store is not complete (no epoch): the watermark was not moved. */
export async function recordApplied(
  redis: Redis,
  keys: StoreKeys,
  w: { newestSourceMs: number; appliedAt: number; caughtUpAt: number | null },
): Promise<boolean> {
  const fields: (string | number)[] = ['sourceMs', w.newestSourceMs, 'appliedAt', w.appliedAt];
  if (w.caughtUpAt !== null) fields.push('caughtUpAt', w.caughtUpAt);
  return gatedHset(redis, keys, fields);
}

/** Returns false when the store is not complete (no epoch): the watermark was not moved. */
export async function markCaughtUp(redis: Redis, keys: StoreKeys, at: number): Promise<boolean> {
  return gatedHset(redis, keys, ['caughtUpAt', at]);
}

/** Marks the store complete (end of a backfill). */
export async function setEpoch(redis: Redis, keys: StoreKeys, epoch: string): Promise<void> {
  await redis.set(keys.epoch, epoch);
}

export async function readWatermark(redis: Redis, keys: StoreKeys): Promise<Watermark> {
  const [sourceMs, appliedAt, caughtUpAt] = await redis.hmget(keys.meta, 'sourceMs', 'appliedAt', 'caughtUpAt');
  const n = (v: string | null) => (v === null ? null : Number(v));
  return { sourceMs: n(sourceMs), appliedAt: n(appliedAt), caughtUpAt: n(caughtUpAt) };
}
