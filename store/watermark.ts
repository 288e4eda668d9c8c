/**
 * The freshness watermark kept next to the features, so readers can tell how fresh what they read
 * is without asking the pipeline:
 *   sourceMs    newest source change time applied (ms since epoch)
 *   appliedAt   when the drain last applied a batch
 *   caughtUpAt  when the drain last confirmed that nothing committed was left unapplied
 *
 * Every partition (store/keys.ts) has its own watermark, written in its own slot after the
 * partition's changes, so it is lost or kept with them; a read of SKUs of several partitions is
 * as fresh as the least fresh of them.
 *
 * A partition's watermark is only written while the partition is complete (its epoch exists):
 * after data loss its meta hash is gone too, reads say stale, and they stay stale until the
 * backfill that restores the store sets the epoch again. Both writers return whether the epoch
 * was there in every partition.
 */
import type { StoreKeys } from './keys';
import { pipelineByNode, StoreRedis } from './redis-client';

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

type WithGate = { fbGatedHset(numKeys: number, ...args: (string | number)[]): unknown };

async function gatedHset(redis: StoreRedis, keys: StoreKeys, fields: (string | number)[]): Promise<boolean> {
  if (typeof (redis as unknown as Partial<WithGate>).fbGatedHset !== 'function')
    redis.defineCommand('fbGatedHset', { lua: GATED_HSET });
  const replies = await pipelineByNode(
    redis,
    keys.partitions,
    (p) => p.meta,
    (pipeline, p) => void (pipeline as unknown as WithGate).fbGatedHset(2, p.meta, p.epoch, ...fields),
  );
  return replies.reduce((all, [err, wrote]) => {
    if (err) throw err;
    return all && wrote === 1;
  }, true);
}

/** Returns false when the store is not complete (a partition has no epoch): that one did not move. */
export async function recordApplied(
  redis: StoreRedis,
  keys: StoreKeys,
  w: { newestSourceMs: number; appliedAt: number; caughtUpAt: number | null },
): Promise<boolean> {
  const fields: (string | number)[] = ['sourceMs', w.newestSourceMs, 'appliedAt', w.appliedAt];
  if (w.caughtUpAt !== null) fields.push('caughtUpAt', w.caughtUpAt);
  return gatedHset(redis, keys, fields);
}

/** Returns false when the store is not complete (a partition has no epoch): that one did not move. */
export async function markCaughtUp(redis: StoreRedis, keys: StoreKeys, at: number): Promise<boolean> {
  return gatedHset(redis, keys, ['caughtUpAt', at]);
}

/** Marks the store complete (end of a backfill). */
export async function setEpoch(redis: StoreRedis, keys: StoreKeys, epoch: string): Promise<void> {
  const replies = await pipelineByNode(
    redis,
    keys.partitions,
    (p) => p.epoch,
    (pipeline, p) => void pipeline.set(p.epoch, epoch),
  );
  for (const [err] of replies) if (err) throw err;
}

/** Whether every partition is complete (has its epoch). */
export async function storeComplete(redis: StoreRedis, keys: StoreKeys): Promise<boolean> {
  const replies = await pipelineByNode(
    redis,
    keys.partitions,
    (p) => p.epoch,
    (pipeline, p) => void pipeline.exists(p.epoch),
  );
  return replies.every(([err, n]) => {
    if (err) throw err;
    return n === 1;
  });
}

/** The store's watermark: the least fresh partition's (a field missing in any partition is missing). */
export async function readWatermark(redis: StoreRedis, keys: StoreKeys): Promise<Watermark> {
  const replies = await pipelineByNode(
    redis,
    keys.partitions,
    (p) => p.meta,
    (pipeline, p) => void pipeline.hmget(p.meta, 'sourceMs', 'appliedAt', 'caughtUpAt'),
  );
  const n = (v: string | null) => (v === null ? null : Number(v));
  const min = (a: number | null | undefined, b: number | null) =>
    a === undefined ? b : a === null || b === null ? null : Math.min(a, b);
  let sourceMs: number | null | undefined, appliedAt: number | null | undefined, caughtUpAt: number | null | undefined;
  for (const [err, f] of replies) {
    if (err) throw err;
    const [s, a, c] = f as (string | null)[];
    sourceMs = min(sourceMs, n(s));
    appliedAt = min(appliedAt, n(a));
    caughtUpAt = min(caughtUpAt, n(c));
  }
  return { sourceMs: sourceMs ?? null, appliedAt: appliedAt ?? null, caughtUpAt: caughtUpAt ?? null };
}
