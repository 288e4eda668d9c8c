/**
 * The freshness watermark kept next to the features, so readers can tell how fresh what they read
 * is without asking the pipeline:
 *   sourceMs    newest source change time applied (ms since epoch)
 *   appliedAt   when the drain last applied a batch
 *   caughtUpAt  when the drain last confirmed that nothing committed was left unapplied (the
 *               time its snapshot vouches for, by the pipeline database's clock: `asOf`)
 *   caughtUpClock  the same moment on the Redis server's own clock: written as TIME minus how long
 *               ago caughtUpAt was, read with TIME by the read script, so a read's lag is measured
 *               with one clock and no host's clock being off can make a stale answer look fresh
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
import type { DeliveryPosition } from './store-position';
import { onEachNode, StoreRedis } from './redis-client';
import { FIELD } from './names';
import { defineScripts, runScript, SCRIPTS } from './scripts';

export interface Watermark {
  sourceMs: number | null;
  appliedAt: number | null;
  caughtUpAt: number | null;
}

/** Thrown when a partition no longer holds what the watermark would claim: the drain retries and its check finds it. */
export class PartitionBehindError extends Error {
  override name = 'PartitionBehindError';
}

async function gatedHset(
  redis: StoreRedis,
  keys: StoreKeys,
  atLeast: DeliveryPosition | null,
  fields: (string | number)[],
  /** How long ago the caughtUpAt among `fields` was (ms), or null when there is none. */
  caughtUpAgeMs: number | null = null,
): Promise<boolean> {
  defineScripts(redis);
  // every partition also records how many partitions the store has: a reader configured with
  // another count (store/keys.ts hashes SKUs by it) must not take this watermark for its own
  const withCount = [...fields, FIELD.partitions, keys.count];
  const replies = await onEachNode(
    redis,
    keys.partitions,
    (p) => p.meta,
    (pipeline, p) =>
      void runScript(
        pipeline,
        SCRIPTS.gatedHset,
        3,
        p.meta,
        p.epoch,
        p.pos,
        atLeast?.batch ?? '',
        atLeast?.txid ?? '',
        atLeast?.id ?? '',
        caughtUpAgeMs === null ? '' : Math.max(0, Math.ceil(caughtUpAgeMs)),
        ...withCount,
      ),
  );
  let complete = true;
  replies.forEach((wrote, i) => {
    if (wrote === -1)
      throw new PartitionBehindError(
        `store partition ${keys.partitions[i]!.index} is below the drain's position ${atLeast?.batch}/${atLeast?.txid}/${atLeast?.id}: it lost writes (failover or restart); the next check rebuilds it`,
      );
    if (wrote !== 1) complete = false;
  });
  return complete;
}

/**
 * Returns false when the store is not complete (a partition has no epoch): that one did not move.
 * `applied`: the delivery position this watermark speaks for; a partition below it lost writes.
 */
export async function recordApplied(
  redis: StoreRedis,
  keys: StoreKeys,
  w: {
    newestSourceMs: number;
    appliedAt: number;
    /** With how long ago it was (ms, measured by the caller: see markCaughtUp), or null. */
    caughtUp: { at: number; ageMs: number } | null;
    applied: DeliveryPosition;
  },
): Promise<boolean> {
  const fields: (string | number)[] = [FIELD.sourceMs, w.newestSourceMs, FIELD.appliedAt, w.appliedAt];
  if (w.caughtUp !== null) fields.push(FIELD.caughtUpAt, w.caughtUp.at);
  return gatedHset(redis, keys, w.applied, fields, w.caughtUp?.ageMs ?? null);
}

/**
 * How long ago a partition's caught-up time was, as reads measure it: on the Redis server's clock
 * (its TIME against caughtUpClock), and at least by this host's clock against caughtUpAt (either
 * alone errs with a clock that is off: serving/badge-reader.ts). Null when either is missing.
 */
export function partitionLagMs(
  caughtUpAt: number | null,
  caughtUpClock: number | null,
  serverNowMs: number,
  hostNowMs: number,
): number | null {
  if (caughtUpAt === null || caughtUpClock === null || !Number.isFinite(caughtUpAt) || !Number.isFinite(caughtUpClock))
    return null;
  return Math.max(0, serverNowMs - caughtUpClock, hostNowMs - caughtUpAt);
}

/** Returns false when the store is not complete (a partition has no epoch): that one did not move. */
export async function markCaughtUp(
  redis: StoreRedis,
  keys: StoreKeys,
  at: number,
  /**
   * How long ago `at` was, now (ms), measured without comparing clocks: the pipeline database's
   * now minus `at` (one clock), plus the worker's monotonic time since it read that now. Never
   * less than the truth as it is sent, so the Redis-clock time written is never later than the
   * real one by more than the write waited to run (the read's host-clock term covers that wait:
   * serving/badge-reader.ts).
   */
  ageMs: number,
  /** The delivery position it speaks for (null: none to check, for tests that write the store directly). */
  applied: DeliveryPosition | null,
): Promise<boolean> {
  return gatedHset(redis, keys, applied, [FIELD.caughtUpAt, at], ageMs);
}

/** Marks the store complete (end of a backfill). */
export async function setEpoch(redis: StoreRedis, keys: StoreKeys, epoch: string): Promise<void> {
  await onEachNode(
    redis,
    keys.partitions,
    (p) => p.epoch,
    (pipeline, p) => void pipeline.set(p.epoch, epoch),
  );
}

/** Whether every partition is complete (has its epoch). */
export async function storeComplete(redis: StoreRedis, keys: StoreKeys): Promise<boolean> {
  const replies = await onEachNode(
    redis,
    keys.partitions,
    (p) => p.epoch,
    (pipeline, p) => void pipeline.exists(p.epoch),
  );
  return replies.every((n) => n === 1);
}

/**
 * The store's watermark: the least fresh partition's (a field missing in any partition is
 * missing), and its lag as the read API measures it (serving/badge-reader.ts): on each Redis
 * server's clock, and at least this host's now minus caughtUpAt.
 */
export async function readWatermark(redis: StoreRedis, keys: StoreKeys): Promise<Watermark & { lagMs: number | null }> {
  defineScripts(redis);
  const replies = await onEachNode(
    redis,
    keys.partitions,
    (p) => p.meta,
    (pipeline, p) => void runScript(pipeline, SCRIPTS.readWatermark, 2, p.meta, p.epoch),
  );
  const n = (v: string | false | null) => (v === null || v === false ? null : Number(v));
  const min = (a: number | null | undefined, b: number | null) =>
    a === undefined ? b : a === null || b === null ? null : Math.min(a, b);
  let sourceMs: number | null | undefined, appliedAt: number | null | undefined, caughtUpAt: number | null | undefined;
  let lagMs: number | null | undefined;
  for (const f of replies) {
    const [s, a, c, clock, time] = f as [string | null, string | null, string | null, string | null, number];
    sourceMs = min(sourceMs, n(s));
    appliedAt = min(appliedAt, n(a));
    caughtUpAt = min(caughtUpAt, n(c));
    const lag = partitionLagMs(n(c), n(clock), Number(time), Date.now());
    lagMs = lagMs === undefined ? lag : lagMs === null || lag === null ? null : Math.max(lagMs, lag);
  }
  return {
    sourceMs: sourceMs ?? null,
    appliedAt: appliedAt ?? null,
    caughtUpAt: caughtUpAt ?? null,
    lagMs: lagMs ?? null,
  };
}
