import type { StoreRedis } from '../../store/redis-client';
import type pg from 'pg';
import { log } from '@temporalio/activity';
import { Config } from '../../config';
import { StoreKeys } from '../../store/keys';
import {
  backfillChunk,
  BackfillTable,
  backfillLoads,
  backfillPlan,
  finishBackfill,
  markBackfillStart,
} from './backfill';
import { applyOptions } from '../apply-options';
import { createWatermarkBackfill } from './through-watermarks';

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
  return {
    /** The plan (row estimates), and the backfill's marker in every store partition. */
    async backfillPlan(input: { marker?: string } = {}) {
      if (logical) return logical.plan(input.marker);
      if (input.marker) await markBackfillStart(deps.redis, deps.keys, input.marker);
      return backfillPlan(deps.sourcePool);
    },
    async backfillChunk(input: { table: BackfillTable; after: string[] | null; limit: number }) {
      if (logical) return logical.chunk(input);
      return backfillChunk(deps.sourcePool, deps.redis, deps.keys, opts, input);
    },
    async backfillLoads() {
      if (logical) return logical.loads();
      return backfillLoads(deps.pool, deps.sourcePool, deps.redis, deps.keys, opts);
    },
    async finishBackfill(input: { epoch: string; marker?: string }) {
      const r = logical
        ? await logical.finish(input)
        : await finishBackfill(deps.redis, deps.keys, input.epoch, input.marker);
      if (r.incomplete.length)
        log.warn(
          `backfill done, but store partitions ${r.incomplete.join(', ')} were rebuilt while it ran: they stay incomplete (reads of their SKUs stale) until the next backfill, which the drain starts`,
        );
      return r;
    },
  };
}
