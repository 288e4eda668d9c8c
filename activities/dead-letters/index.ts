import type { Redis } from 'ioredis';
import type pg from 'pg';
import { Config } from '../../config';
import { StoreKeys } from '../../store/keys';
import { rethrowClassified } from '../errors';
import { retryDeadLetters } from './retry';

export function createDeadLetterActivities(deps: { pool: pg.Pool; redis: Redis; keys: StoreKeys; config: Config }) {
  const opts = { chunk: deps.config.APPLY_CHUNK, tombstoneTtlS: deps.config.TOMBSTONE_TTL_S, loadTtlS: deps.config.LOAD_TTL_S };
  return {
    async retryDeadLetters(input: { ids?: string[] }) {
      try {
        return await retryDeadLetters(deps.pool, deps.redis, deps.keys, opts, input);
      } catch (err) {
        rethrowClassified(err, 'dead-letter retry');
      }
    },
  };
}
