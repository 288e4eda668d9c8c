/**
 * The pipeline with its inventory database on a PostgreSQL server of the test's own
 * (test/support/private-postgres.ts), so the test can crash or restore it, and the orders database
 * on the shared server: capture workflows for both, a drain, the read API, and a shop of `skus`
 * plus PROBE seeded on two FCs. For source-restart.test.ts and source-restore.test.ts.
 *
 * Call at the top of a describe block; the server must exist before (its port is in the worker's
 * configuration). The server is destroyed after the block.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll } from 'vitest';
import type pg from 'pg';
import { captureSources } from '../../capture/sources';
import { createPool } from '../../db/pool';
import { createSourceDatabase } from '../../scripts/lib/source-databases';
import { resetState, startDrain } from './env';
import { get } from './http';
import { usePipeline } from './pipeline-fixture';
import type { PrivatePostgres } from './private-postgres';
import { readerUrl, startCaptureWorkflows, TEST_ORDERS_URL } from './split-sources';
import { TEST_DATABASE_URL } from './test-urls';
import { forgetSources, seedTwoFcShop } from './two-sources';

export const STALE_AFTER_MS = 1_500;

export function usePrivateInventory(name: string, server: PrivatePostgres, skus: string[]) {
  const inventoryUrl = server.url('fresh_badges_inventory');
  const config = {
    CAPTURE_MODE: 'logical',
    CAPTURE_TICK_MS: '20',
    INVENTORY_DATABASE_URL: readerUrl(inventoryUrl),
    ORDERS_DATABASE_URL: readerUrl(TEST_ORDERS_URL),
  };
  const f = usePipeline(name, { worker: true, api: { staleAfterMs: STALE_AFTER_MS }, config });
  const sources = () => captureSources({ DATABASE_URL: TEST_DATABASE_URL, ...config });
  const pools = {} as { inventory: pg.Pool; orders: pg.Pool };
  let captures: { stop(): Promise<void> } | null = null;

  beforeAll(async () => {
    await createSourceDatabase({ url: inventoryUrl, tables: 'inventory', forCapture: true });
    await createSourceDatabase({ url: TEST_ORDERS_URL, tables: 'orders', forCapture: true });
    await f.c.pool.query(`delete from pipeline.capture_progress`);
    await resetState(f.c);
    pools.inventory = createPool(inventoryUrl, 4);
    pools.orders = createPool(TEST_ORDERS_URL, 4);
    // capture first: a change before the slot exists is not in it (the store would need a backfill)
    captures = await startCaptureWorkflows(f.temporal.client, f.taskQueue, f.c.pool, sources());
    await startDrain(f.temporal.client, f.c.config, {
      taskQueue: f.taskQueue,
      workflowId: `drain-${name}-${Date.now()}`,
      args: [{ intervalMs: 60_000, idleWaitMs: 200 }],
    });
    await seedTwoFcShop(pools.inventory, [...skus, 'PROBE']);
  }, 120_000);

  afterAll(async () => {
    await captures?.stop().catch(() => {});
    await pools.inventory?.end();
    await pools.orders?.end();
    await server.destroy(); // its slot goes with it
    await forgetSources(f.c.pool, TEST_ORDERS_URL, sources().find((s) => s.name === 'orders')!.slot);
  });

  return {
    f,
    pools,
    /** One SKU's badge in region R1, from the read API. */
    badge: async (sku: string) => (await get(`${f.api.base}/v1/badges/${sku}?region=R1`)).body,
    /**
     * Stock of `skus` moving until `going()` turns false (PROBE left alone); writes that meet the
     * server down fail and are not counted (the rule reads what committed).
     */
    async writeInventory(going: () => boolean): Promise<void> {
      for (let i = 0; going(); i++) {
        const sku = skus[(i * 7) % skus.length]!;
        try {
          await pools.inventory.query(
            `update shop.inventory set on_hand = 10 + ($3::int % 30) where sku_id = $1 and fc_id = $2`,
            [sku, i % 2 ? 'FC-1' : 'FC-2', i],
          );
        } catch {
          await sleep(100); // down, or the pool's connection was cut by the crash
        }
        await sleep(5);
      }
    },
  };
}
