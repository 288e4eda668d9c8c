import { heartbeat } from '@temporalio/activity';
import type { StoreRedis } from '../../store/redis-client';
import type pg from 'pg';
import { Config } from '../../config';
import { StoreKeys } from '../../store/keys';
import type { Position } from '../../outbox';
import { replayBounds, replayRange } from './replay-range';
import { applyOptions } from '../apply-options';
import type { SourceRows } from '../../capture/source-rows';

export function createReplayActivities(deps: {
  pool: pg.Pool;
  redis: StoreRedis;
  keys: StoreKeys;
  config: Config;
  sourceRows: SourceRows;
}) {
  const opts = applyOptions(deps.config);
  return {
    async replayBounds(input: { from: Position }) {
      return replayBounds(deps.pool, input.from);
    },
    async replayChunk(input: { from: Position; to: Position; toSnapshot?: string; limit: number }) {
      const r = await replayRange(deps.pool, deps.redis, deps.keys, opts, input, deps.sourceRows);
      heartbeat(r.position);
      return r;
    },
  };
}
