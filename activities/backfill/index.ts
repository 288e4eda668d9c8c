import type { Redis } from 'ioredis';
import type pg from 'pg';
import { Config } from '../../config';
import { StoreKeys } from '../../store/keys';
import { rethrowClassified } from '../errors';
import { backfillChunk, BackfillTable, backfillLoads, backfillPlan, finishBackfill } from './backfill';

export function createBackfillActivities(deps: { pool: pg.Pool; sourcePool: pg.Pool; redis: Redis; keys: StoreKeys; config: Config }) {
  const opts = { chunk: deps.config.APPLY_CHUNK, tombstoneTtlS: deps.config.TOMBSTONE_TTL_S, loadTtlS: deps.config.LOAD_TTL_S };
  const guard = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      rethrowClassified(err, what);
    }
  };
  return {
    async backfillPlan() {
      return guard('backfill plan', () => backfillPlan(deps.sourcePool));
    },
    async backfillChunk(input: { table: BackfillTable; after: string[] | null; limit: number }) {
      return guard(`backfill of shop.${input.table}`, () => backfillChunk(deps.sourcePool, deps.redis, deps.keys, opts, input));
    },
    async backfillLoads() {
      return guard('backfill of FC loads', () => backfillLoads(deps.pool, deps.sourcePool, deps.redis, deps.keys, opts));
    },
    async finishBackfill(input: { epoch: string }) {
      return guard('backfill finish', () => finishBackfill(deps.redis, deps.keys, input.epoch));
    },
  };
}
