import { activityInfo, ApplicationFailure, heartbeat } from '@temporalio/activity';
import type { StoreRedis } from '../../store/redis-client';
import type pg from 'pg';
import { Config } from '../../config';
import { StoreKeys } from '../../store/keys';
import { OutboxReleasedError, type Position } from '../../outbox';
import { replayBounds, replayRange } from './replay-range';
import { applyOptions } from '../apply-options';
import type { SourceRows } from '../../capture/source-rows';

const holderName = () => {
  const info = activityInfo();
  return info.workflowExecution?.workflowId ?? `replay activity ${info.activityId}`;
};

export function createReplayActivities(deps: {
  pool: pg.Pool;
  redis: StoreRedis;
  keys: StoreKeys;
  config: Config;
  sourceRows: SourceRows;
}) {
  const opts = applyOptions(deps.config);
  return {
    // The replay's workflow id names its hold on the outbox (outbox/holds.ts): the same across
    // retries and continue-as-new.
    async replayBounds(input: { from: Position }) {
      return replayBounds(deps.pool, input.from, holderName());
    },
    async replayChunk(input: { from: Position; to: Position; toSnapshot?: string; limit: number }) {
      const holder = holderName();
      try {
        const r = await replayRange(deps.pool, deps.redis, deps.keys, opts, input, deps.sourceRows, holder);
        heartbeat(r.position);
        return r;
      } catch (err) {
        // no retry brings deleted rows back: the operator starts a new replay from here
        if (err instanceof OutboxReleasedError)
          throw ApplicationFailure.nonRetryable(
            `${err.message}; changes after ${input.from.txid}:${input.from.id} may be missing from the outbox. Start a new replay: npm run ops -- replay --from ${input.from.txid}:${input.from.id}`,
            err.name,
          );
        throw err;
      }
    },
  };
}
