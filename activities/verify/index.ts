import { Context } from '@temporalio/activity';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { StoreKeys } from '../../store/keys';
import { verifyStore, VerifyOptions } from '../../reconcile/verify';
import { rethrowClassified } from '../errors';

export function createVerifyActivities(deps: { sourcePool: pg.Pool; redis: Redis; keys: StoreKeys }) {
  return {
    /** Reconciles the store against the source (replica when configured); see reconcile/verify.ts. */
    async verifyStore(input: VerifyOptions) {
      try {
        return await verifyStore(deps.sourcePool, deps.redis, deps.keys, input, (checked) => {
          try {
            Context.current().heartbeat({ checkedSkus: checked });
          } catch {
            // outside an activity
          }
        });
      } catch (err) {
        rethrowClassified(err, 'verify');
      }
    },
  };
}
