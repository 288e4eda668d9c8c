import type { StoreRedis } from '../../store/redis-client';
import type pg from 'pg';
import { Config } from '../../config';
import { StoreKeys } from '../../store/keys';
import { backfillChunk, BackfillTable, backfillLoads, backfillPlan, finishBackfill } from './backfill';
import { applyOptions } from '../apply-options';

export function createBackfillActivities(deps: {
  pool: pg.Pool;
  sourcePool: pg.Pool;
  redis: StoreRedis;
  keys: StoreKeys;
  config: Config;
}) {
  const opts = applyOptions(deps.config);
  return {
    async backfillPlan() {
      return backfillPlan(deps.sourcePool);
    },
    async backfillChunk(input: { table: BackfillTable; after: string[] | null; limit: number }) {
      return backfillChunk(deps.sourcePool, deps.redis, deps.keys, opts, input);
    },
    async backfillLoads() {
      return backfillLoads(deps.pool, deps.sourcePool, deps.redis, deps.keys, opts);
    },
    async finishBackfill(input: { epoch: string }) {
      return finishBackfill(deps.redis, deps.keys, input.epoch);
    },
  };
}
