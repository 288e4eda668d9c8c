import type pg from 'pg';
import { rethrowClassified } from '../errors';
import { refreshSkuFromSource } from './refresh-sku';

export function createLifecycleActivities(deps: { pool: pg.Pool }) {
  return {
    /** Re-emits one SKU's current source rows through the outbox (idempotent; safe to repeat). */
    async refreshSku(input: { sku: string }): Promise<{ rows: number }> {
      try {
        return await refreshSkuFromSource(deps.pool, input.sku);
      } catch (err) {
        rethrowClassified(err, `refresh of SKU ${input.sku}`);
      }
    },
  };
}
