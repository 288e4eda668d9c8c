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
import { refuseUnderLogicalCapture } from '../../capture/logical-limits';

export function createBackfillActivities(deps: {
  pool: pg.Pool;
  sourcePool: pg.Pool;
  redis: StoreRedis;
  keys: StoreKeys;
  config: Config;
}) {
  const opts = applyOptions(deps.config);
  return {
    /** The plan (row estimates), and the backfill's marker in every store partition. */
    async backfillPlan(input: { marker?: string } = {}) {
      refuseUnderLogicalCapture(deps.config, 'a backfill');
      if (input.marker) await markBackfillStart(deps.redis, deps.keys, input.marker);
      return backfillPlan(deps.sourcePool);
    },
    async backfillChunk(input: { table: BackfillTable; after: string[] | null; limit: number }) {
      refuseUnderLogicalCapture(deps.config, 'a backfill');
      return backfillChunk(deps.sourcePool, deps.redis, deps.keys, opts, input);
    },
    async backfillLoads() {
      refuseUnderLogicalCapture(deps.config, 'a backfill');
      return backfillLoads(deps.pool, deps.sourcePool, deps.redis, deps.keys, opts);
    },
    async finishBackfill(input: { epoch: string; marker?: string }) {
      const r = await finishBackfill(deps.redis, deps.keys, input.epoch, input.marker);
      if (r.incomplete.length)
        log.warn(
          `backfill done, but store partitions ${r.incomplete.join(', ')} were rebuilt while it ran: they stay incomplete (reads of their SKUs stale) until the next backfill, which the drain starts`,
        );
      return r;
    },
  };
}
