/**
 * The freshness watermark kept next to the features, so readers can tell how fresh what they read
 * is without asking the pipeline:
 *   sourceMs    newest source change time applied (ms since epoch)
 *   appliedAt   when the drain last applied a batch
 *   caughtUpAt  when the drain last confirmed that nothing committed was left unapplied
 */
import type { Redis } from 'ioredis';
import type { StoreKeys } from './keys';

export interface Watermark {
  sourceMs: number | null;
  appliedAt: number | null;
  caughtUpAt: number | null;
}

export async function recordApplied(
  redis: Redis,
  keys: StoreKeys,
  w: { newestSourceMs: number; appliedAt: number; caughtUpAt: number | null },
): Promise<void> {
  const fields: (string | number)[] = ['sourceMs', w.newestSourceMs, 'appliedAt', w.appliedAt];
  if (w.caughtUpAt !== null) fields.push('caughtUpAt', w.caughtUpAt);
  await redis.hset(keys.meta, ...fields);
}

export async function markCaughtUp(redis: Redis, keys: StoreKeys, at: number): Promise<void> {
  await redis.hset(keys.meta, 'caughtUpAt', at);
}

export async function readWatermark(redis: Redis, keys: StoreKeys): Promise<Watermark> {
  const [sourceMs, appliedAt, caughtUpAt] = await redis.hmget(keys.meta, 'sourceMs', 'appliedAt', 'caughtUpAt');
  const n = (v: string | null) => (v === null ? null : Number(v));
  return { sourceMs: n(sourceMs), appliedAt: n(appliedAt), caughtUpAt: n(caughtUpAt) };
}
