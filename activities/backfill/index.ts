import type { StoreRedis } from '../../store/redis-client';
import type pg from 'pg';
import { ApplicationFailure, log } from '@temporalio/activity';
import { Config } from '../../config';
import { StoreKeys } from '../../store/keys';
import {
  backfillChunk,
  BackfillTable,
  backfillLoads,
  BackfillWritesLost,
  backfillPlan,
  finishBackfill,
  markBackfillStart,
  recordBackfillStep,
} from './backfill';
import { applyOptions } from '../apply-options';
import { createWatermarkBackfill } from './through-watermarks';
import { holdWaiting } from '../dead-letters';
import { inActivity } from '../in-activity';
import { keptAlive } from '../kept-alive';
import { heartbeatAgain } from '../heartbeat-details';

/**
 * Every step heartbeats this often while it runs, well inside its heartbeat timeout
 * (workflows/activity-options.ts, backfillActivity): a step on a worker that died is retried
 * elsewhere then, not after its 5-minute start-to-close, while the reads it leaves stale wait.
 */
export const BACKFILL_KEEP_ALIVE_MS = 5_000;

/**
 * A step, heartbeating while it runs (when it runs as an activity: tests and the CLI call them
 * directly), with what the step last reported (a wait for capture or the drain), so the keep-alive
 * does not wipe it from the Web UI.
 */
const beating = <T>(step: () => Promise<T>): Promise<T> =>
  inActivity() ? keptAlive(step(), heartbeatAgain, BACKFILL_KEEP_ALIVE_MS) : step();

export function createBackfillActivities(deps: {
  pool: pg.Pool;
  sourcePool: pg.Pool;
  redis: StoreRedis;
  keys: StoreKeys;
  config: Config;
  /** Aborted when the worker shuts down (worker/create-worker.ts). */
  stopping?: AbortSignal;
}) {
  const opts = applyOptions(deps.config);
  // Under capture from the WAL the source is read between watermarks (through-watermarks.ts).
  const logical = deps.config.CAPTURE_MODE === 'logical' ? createWatermarkBackfill(deps) : null;
  const recordStep = async (input: { marker?: string; step?: number }) => {
    if (!input.marker || input.step === undefined) return; // a backfill started by older code
    try {
      await recordBackfillStep(deps.redis, deps.keys, input.marker, input.step);
    } catch (err) {
      // not retried: the workflow starts the backfill again
      if (err instanceof BackfillWritesLost) throw ApplicationFailure.nonRetryable(err.message, err.name);
      throw err;
    }
  };
  return {
    /** The plan (row estimates), and the backfill's marker in every store partition. */
    async backfillPlan(input: { marker?: string } = {}) {
      return beating(async () => {
        if (logical) return logical.plan(input.marker);
        if (input.marker) await markBackfillStart(deps.redis, deps.keys, input.marker);
        return backfillPlan(deps.sourcePool);
      });
    },
    /**
     * `step` (with the backfill's `marker`): this chunk's number in the backfill, recorded in the
     * store after its writes (recordBackfillStep); BackfillWritesLost when Redis lost earlier ones.
     */
    async backfillChunk(input: {
      table: BackfillTable;
      after: string[] | null;
      limit: number;
      marker?: string;
      step?: number;
    }) {
      // (steps are counted in both modes: a backfill can run across a change of CAPTURE_MODE)
      const r = await beating(() =>
        logical ? logical.chunk(input) : backfillChunk(deps.sourcePool, deps.redis, deps.keys, opts, input),
      );
      await recordStep(input);
      return r;
    },
    async backfillLoads(input: { marker?: string; step?: number } = {}) {
      const r = await beating(() =>
        logical ? logical.loads() : backfillLoads(deps.pool, deps.sourcePool, deps.redis, deps.keys, opts),
      );
      await recordStep(input);
      return r;
    },
    /** `steps`: how many the backfill recorded; a partition holding fewer stays incomplete. */
    async finishBackfill(input: { epoch: string; marker?: string; steps?: number }) {
      // A rebuild emptied the holds with everything else, and the refill does not bring back a
      // change that was dead-lettered (the trigger capture's fill skips a malformed row): what
      // every waiting letter names is held again before the store is complete.
      const r = await beating(async () => {
        await holdWaiting(deps);
        return logical
          ? logical.finish(input)
          : finishBackfill(deps.redis, deps.keys, input.epoch, input.marker, input.steps);
      });
      if (r.incomplete.length)
        log.warn(
          `backfill done, but store partitions ${r.incomplete.join(', ')} were rebuilt while it ran: they stay incomplete (reads of their SKUs stale) until the next backfill, which the drain starts`,
        );
      return r;
    },
  };
}
