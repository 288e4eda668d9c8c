import { Context } from '@temporalio/activity';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { Config } from '../../config';
import { StoreKeys } from '../../store/keys';
import type { Position } from '../drain/outbox-reader';
import { rethrowClassified } from '../errors';
import { replayBounds, replayRange } from './replay-range';

export function createReplayActivities(deps: { pool: pg.Pool; redis: Redis; keys: StoreKeys; config: Config }) {
  const opts = { chunk: deps.config.APPLY_CHUNK, tombstoneTtlS: deps.config.TOMBSTONE_TTL_S, loadTtlS: deps.config.LOAD_TTL_S };
  return {
    async replayBounds(input: { from: Position }) {
      try {
        return await replayBounds(deps.pool, input.from);
      } catch (err) {
        rethrowClassified(err, 'replay bounds');
      }
    },
    async replayChunk(input: { from: Position; to: Position; toSnapshot?: string; limit: number }) {
      try {
        const r = await replayRange(deps.pool, deps.redis, deps.keys, opts, input);
        try {
          Context.current().heartbeat(r.position);
        } catch {
          // outside an activity
        }
        return r;
      } catch (err) {
        rethrowClassified(err, 'replay');
      }
    },
  };
}
