import type { StoreRedis } from '../../store/redis-client';
import type pg from 'pg';
import { Config } from '../../config';
import { StoreKeys } from '../../store/keys';
import { retryDeadLetters } from './retry';
import { applyOptions } from '../apply-options';

export function createDeadLetterActivities(deps: {
  pool: pg.Pool;
  redis: StoreRedis;
  keys: StoreKeys;
  config: Config;
}) {
  const opts = applyOptions(deps.config);
  return {
    async retryDeadLetters(input: { ids?: string[] }) {
      return retryDeadLetters(deps.pool, deps.redis, deps.keys, opts, input);
    },
  };
}
