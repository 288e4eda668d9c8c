import { heartbeat } from '@temporalio/activity';
import type { StoreRedis } from '../../store/redis-client';
import type pg from 'pg';
import { Config } from '../../config';
import { StoreKeys } from '../../store/keys';
import type { Position } from '../../outbox';
import { replayBounds, replayRange } from './replay-range';
import { applyOptions } from '../apply-options';

export function createReplayActivities(deps: { pool: pg.Pool; redis: StoreRedis; keys: StoreKeys; config: Config }) {
  const opts = applyOptions(deps.config);
  return {
    async replayBounds(input: { from: Position }) {
      return replayBounds(deps.pool, input.from);
    },
    async replayChunk(input: { from: Position; to: Position; toSnapshot?: string; limit: number }) {
      const r = await replayRange(deps.pool, deps.redis, deps.keys, opts, input);
      heartbeat(r.position);
      return r;
    },
  };
}
