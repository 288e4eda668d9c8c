import { drainBatch, DrainBatchInput, DrainDeps } from './drain-batch';
import {
  acquireLease,
  drainShard,
  LeaseState,
  readDrainLayout,
  releaseLease,
  SINGLE_DRAIN,
  type DrainShard,
} from '../../outbox';
import { ensureConsumer } from '../../outbox';
import { holdSettler } from './settle-holds';

/** Which drain shard a workflow run drains (outbox/shards.ts); absent: the single drain. */
export interface ShardRef {
  index: number;
  count: number;
}

const shardOf = (ref: ShardRef | undefined, fallback: DrainShard): DrainShard =>
  ref ? drainShard(ref.index, ref.count) : fallback;

/** The drain's activities, bound to their clients. */
export function createDrainActivities(deps: DrainDeps) {
  const fallback = deps.shard ?? SINGLE_DRAIN;
  const settleHolds = holdSettler(deps);
  return {
    /** Takes the shard's lease for this run (the workflow id) and makes sure its cursor row exists. */
    async acquireDrainLease(input: { owner: string; shard?: ShardRef }): Promise<LeaseState> {
      const shard = shardOf(input.shard, fallback);
      // A run of a shard the install no longer has (DRAIN_SHARDS changed) steps aside, and leaves
      // no cursor row behind (one that never moved would hold back outbox compaction).
      const layout = await readDrainLayout(deps.pool);
      if (layout.shards !== shard.count)
        return { acquired: false, holder: `(none: the install drains with ${layout.shards} shard(s))`, expiresInMs: 0 };
      await ensureConsumer(deps.pool, deps.consumer ?? shard.consumer);
      return acquireLease(deps.pool, shard.lease, input.owner, deps.config.DRAIN_LEASE_TTL_MS);
    },
    async releaseDrainLease(input: { owner: string; shard?: ShardRef }): Promise<boolean> {
      return releaseLease(deps.pool, shardOf(input.shard, fallback).lease, input.owner);
    },
    async drainBatch(input: DrainBatchInput & { shard?: ShardRef }) {
      const result = await drainBatch({ ...deps, shard: shardOf(input.shard, fallback) }, input);
      await settleHolds();
      return result;
    },
  };
}

export type { DrainBatchInput, DrainBatchResult } from './drain-batch';
