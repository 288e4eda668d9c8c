import type { StoreRedis } from '../../store/redis-client';
import type pg from 'pg';
import type { StoreKeys } from '../../store/keys';
import { rebuildDone } from '../../store/rebuild-requests';
import type { SourceRows } from '../../capture/source-rows';

export function createLifecycleActivities(deps: {
  pool: pg.Pool;
  redis: StoreRedis;
  keys: StoreKeys;
  sourceRows: SourceRows;
}) {
  return {
    /**
     * Re-emits one SKU's current source rows through the outbox (idempotent; safe to repeat), then
     * clears its rebuild request: the drain applies the re-emitted rows in order from here.
     */
    async refreshSku(input: { sku: string }): Promise<{ rows: number }> {
      const r = await deps.sourceRows.refreshSku(input.sku);
      await rebuildDone(deps.redis, deps.keys, input.sku);
      return r;
    },
  };
}
