import { names } from '../../config';
import { drainBatch, DrainBatchInput, DrainDeps } from './drain-batch';
import { acquireLease, LeaseState, releaseLease } from '../../outbox';
import { ensureConsumer } from '../../outbox';

/** The drain's activities, bound to their clients. */
export function createDrainActivities(deps: DrainDeps) {
  const consumer = deps.consumer ?? names.drainConsumer;
  return {
    /** Takes the drain lease for this run (the workflow id) and makes sure the cursor row exists. */
    async acquireDrainLease(input: { owner: string }): Promise<LeaseState> {
      await ensureConsumer(deps.pool, consumer);
      return acquireLease(deps.pool, names.drainLease, input.owner, deps.config.DRAIN_LEASE_TTL_MS);
    },
    async releaseDrainLease(input: { owner: string }): Promise<boolean> {
      return releaseLease(deps.pool, names.drainLease, input.owner);
    },
    async drainBatch(input: DrainBatchInput) {
      return drainBatch(deps, input);
    },
  };
}

export type { DrainBatchInput, DrainBatchResult } from './drain-batch';
