/**
 * The re-split workflow's activities (workflows/reshard.ts): each step of activities/drain/reshard.ts
 * as an idempotent activity, plus the drain schedules of the new layout. A refusal (ReshardError)
 * fails the workflow at once; anything else (a lost connection, an interrupted split) is retried.
 */
import { ApplicationFailure } from '@temporalio/common';
import { Context, heartbeat } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import type pg from 'pg';
import type { Config } from '../../config';
import type { StoreKeys } from '../../store/keys';
import type { StoreRedis } from '../../store/redis-client';
import { drainScheduleIds, ensureSchedules, triggerDrains, anyDrainSchedulePaused } from '../../scripts/lib/schedules';
import {
  catchUpToFreeze,
  freezeForReshard,
  liftFreeze,
  ReshardDeps,
  ReshardError,
  splitAtFreeze,
  type CatchUpProgress,
} from './reshard';

/** The failure type of a refused re-split: workflows/reshard.ts and the CLI tell it apart. */
export const RESHARD_REFUSED = 'ReshardRefused';

async function refusalsFinal<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof ReshardError) throw ApplicationFailure.nonRetryable(err.message, RESHARD_REFUSED);
    throw err;
  }
}

export function createReshardActivities(deps: {
  pool: pg.Pool;
  redis: StoreRedis;
  keys: StoreKeys;
  config: Config;
  /** A Temporal client, for the drain schedules (the worker's own connection settings). */
  temporal?: () => Promise<Client>;
}) {
  const base: ReshardDeps = { pool: deps.pool, redis: deps.redis, keys: deps.keys, config: deps.config };
  return {
    /** Step 1: the freeze, held by `owner` (the workflow run). */
    async reshardFreeze(input: { shards: number; owner: string }) {
      return refusalsFinal(() => freezeForReshard(base, input.shards, input.owner));
    },

    /**
     * Step 2: until every old shard is at the freeze snapshot, heartbeating the shards still
     * waiting; the freeze's lease is renewed each round. Cancelled through the heartbeat.
     */
    async reshardCatchUp(input: { owner: string; snap: string; timeoutMs: number }): Promise<number> {
      const ctx = Context.current();
      return refusalsFinal(() =>
        catchUpToFreeze(
          {
            ...base,
            heartbeat: (p: CatchUpProgress) => {
              heartbeat(p);
              if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason ?? new Error('cancelled');
            },
          },
          input.snap,
          input.owner,
          input.timeoutMs,
        ),
      );
    },

    /** Step 3: the switch (retried until it succeeds once it has rewritten positions). */
    async reshardSplit(input: { owner: string; snap: string; shards: number }): Promise<string> {
      return refusalsFinal(() => splitAtFreeze(base, input.snap, input.shards, input.owner));
    },

    /** After a failure or a cancellation: the freeze goes, unless the split began. */
    async reshardLiftFreeze(input: { owner: string }): Promise<boolean> {
      return liftFreeze(base, input.owner);
    },

    /**
     * One drain schedule per shard of `shards` (the others deleted); when an operator had paused
     * the drain, the new schedules are created paused and nothing is triggered.
     */
    async reshardSchedules(input: {
      shards: number;
    }): Promise<{ schedules: string[]; paused: boolean; triggered: string[] }> {
      if (!deps.temporal) throw new Error('this worker has no Temporal client for schedules');
      const client = await deps.temporal();
      const paused = await anyDrainSchedulePaused(client);
      await ensureSchedules(client, deps.config, input.shards, { pausedDrains: paused });
      const triggered = paused ? [] : await triggerDrains(client, input.shards);
      return { schedules: drainScheduleIds(input.shards), paused, triggered };
    },
  };
}
