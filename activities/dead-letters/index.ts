import type { StoreRedis } from '../../store/redis-client';
import type pg from 'pg';
import { Config } from '../../config';
import { StoreKeys } from '../../store/keys';
import { retryDeadLetters } from './retry';
import { discardDeadLetters, type DiscardInput } from './discard';
import { applyOptions } from '../apply-options';
import type { SourceRows } from '../../capture/source-rows';

export function createDeadLetterActivities(deps: {
  pool: pg.Pool;
  redis: StoreRedis;
  keys: StoreKeys;
  config: Config;
  sourceRows: SourceRows;
}) {
  const opts = applyOptions(deps.config);
  return {
    async retryDeadLetters(input: { ids?: string[] }) {
      return retryDeadLetters(deps.pool, deps.redis, deps.keys, opts, input, deps.sourceRows);
    },
    async discardDeadLetters(input: DiscardInput) {
      return discardDeadLetters(deps.pool, input);
    },
  };
}
