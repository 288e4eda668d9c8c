/**
 * A source PostgreSQL server that crashes and restarts under traffic (issue 23, point 8), with
 * capture from the WAL: the inventory database on a server of the test's own
 * (test/support/private-postgres.ts), the orders database on the shared one, the pipeline's
 * database apart. The server is killed (`pg_ctl stop -m immediate`: no checkpoint, so its slot
 * comes back at the position of its last checkpoint and the capture is sent transactions it has
 * already written) right after a probe change commits, and started again.
 *  - While it is down, no answer is fresh as of after the probe without the probe.
 *  - Once it is up, the capture reconnects by itself (Temporal retries the activity) and reads go
 *    fresh again; the time that took is printed.
 *  - The store ends equal to the rule over both sources: nothing lost, nothing applied twice (a
 *    load delta written twice into the outbox would show).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { captureSources } from '../../capture/sources';
import { createPool } from '../../db/pool';
import { createSourceDatabase } from '../../scripts/lib/source-databases';
import { eventually, resetState, startDrain } from '../support/env';
import { get } from '../support/http';
import { usePipeline } from '../support/pipeline-fixture';
import { PrivatePostgres } from '../support/private-postgres';
import { readerUrl, startCaptureWorkflows, TEST_ORDERS_URL } from '../support/split-sources';
import { TEST_DATABASE_URL } from '../support/test-urls';
import { forgetSources, seedTwoFcShop, storeEqualsRule as twoSourcesEqualRule } from '../support/two-sources';

const STALE_AFTER_MS = 1_500;
const SKUS = Array.from({ length: 30 }, (_, i) => `S-${i}`);

// Created before the worker starts: its configuration names the server's port.
const server = await PrivatePostgres.create('source-restart');
const inventoryUrl = server.url('fresh_badges_inventory');
const config = {
  CAPTURE_MODE: 'logical',
  CAPTURE_TICK_MS: '20',
  INVENTORY_DATABASE_URL: readerUrl(inventoryUrl),
  ORDERS_DATABASE_URL: readerUrl(TEST_ORDERS_URL),
};

describe('a source server crashing and restarting under traffic', () => {
  const f = usePipeline('source-restart', { worker: true, api: { staleAfterMs: STALE_AFTER_MS }, config });
  let inventory: pg.Pool;
  let orders: pg.Pool;
  let captures: { stop(): Promise<void> } | null = null;
  const sources = () => captureSources({ DATABASE_URL: TEST_DATABASE_URL, ...config });

  beforeAll(async () => {
    await createSourceDatabase({ url: inventoryUrl, tables: 'inventory', forCapture: true });
    await createSourceDatabase({ url: TEST_ORDERS_URL, tables: 'orders', forCapture: true });
    await f.c.pool.query(`delete from pipeline.capture_progress`);
    await resetState(f.c);
    inventory = createPool(inventoryUrl, 4);
    orders = createPool(TEST_ORDERS_URL, 4);
    // capture first: a change before the slot exists is not in it (the store would need a backfill)
    captures = await startCaptureWorkflows(f.temporal.client, f.taskQueue, f.c.pool, sources());
    await startDrain(f.temporal.client, f.c.config, {
      taskQueue: f.taskQueue,
      workflowId: `drain-source-restart-${Date.now()}`,
      args: [{ intervalMs: 60_000, idleWaitMs: 200 }],
    });
    await seedTwoFcShop(inventory, [...SKUS, 'PROBE']);
    await inventory.query(`update shop.skus set lifecycle = 'paused' where sku_id = 'PROBE'`);
  }, 120_000);

  afterAll(async () => {
    await captures?.stop().catch(() => {});
    await inventory?.end();
    await orders?.end();
    await server.destroy(); // its slot goes with it
    await forgetSources(f.c.pool, TEST_ORDERS_URL, sources().find((s) => s.name === 'orders')!.slot);
  });

  const badge = async (sku: string) => (await get(`${f.api.base}/v1/badges/${sku}?region=R1`)).body;

  it('never answers fresh without a change the crash held back, heals by itself, loses and doubles nothing', async () => {
    let writing = true;
    const writers = [writeOrders(orders, () => writing), writeInventory(inventory, () => writing)];
    await sleep(1_500);

    await inventory.query(`update shop.skus set lifecycle = 'active' where sku_id = 'PROBE'`);
    const probeAt = Date.now();
    await server.stop('immediate');

    // Down: read the probe all along; no answer fresh as of after it may lack it.
    const falseFresh: unknown[] = [];
    let reading = true;
    const reader = (async () => {
      while (reading) {
        const b = await badge('PROBE');
        if (!b.stale && Date.parse(b.asOf) >= probeAt && b.reason === 'paused') falseFresh.push(b); // without the probe
        await sleep(25);
      }
    })();
    await eventually(async () => (await badge('PROBE')).stale === true, 10_000, 'reads stale with the source down');
    await sleep(2_000);

    await server.start();
    const upAt = Date.now();
    await eventually(
      async () => {
        const b = await badge('PROBE');
        return !b.stale && Date.parse(b.asOf) >= upAt;
      },
      30_000,
      'reads fresh again after the restart',
    );
    console.log(`source restart healed ${Date.now() - upAt} ms after the server accepted connections`);
    writing = false;
    await Promise.all(writers);
    reading = false;
    await reader;
    expect(falseFresh).toEqual([]);
    expect((await badge('PROBE')).reason).not.toBe('paused');

    await twoSourcesEqualRule(f.c, { inventory, orders }, 30_000, 'the store to equal the rule over both sources');
  }, 120_000);
});

/** Orders placed and cancelled until told to stop (the orders server stays up). */
async function writeOrders(orders: pg.Pool, going: () => boolean): Promise<void> {
  for (let i = 0; going(); i++) {
    const sku = SKUS[i % SKUS.length]!;
    await orders.query(`insert into shop.orders (sku_id, fc_id, qty, status) values ($1, $2, $3, 'placed')`, [
      sku,
      i % 3 ? 'FC-1' : 'FC-2',
      1 + (i % 3),
    ]);
    if (i % 7 === 0)
      await orders.query(
        `update shop.orders set status = 'cancelled' where order_id = (select min(order_id) from shop.orders where status = 'placed')`,
      );
    await sleep(5);
  }
}

/** Stock moving until told to stop; writes that meet the server down fail and are not counted (the rule reads what committed). */
async function writeInventory(inventory: pg.Pool, going: () => boolean): Promise<void> {
  for (let i = 0; going(); i++) {
    const sku = SKUS[(i * 7) % SKUS.length]!;
    try {
      await inventory.query(
        `update shop.inventory set on_hand = 10 + ($3::int % 30) where sku_id = $1 and fc_id = $2`,
        [sku, i % 2 ? 'FC-1' : 'FC-2', i],
      );
    } catch {
      await sleep(100); // down, or the pool's connection was cut by the crash
    }
    await sleep(5);
  }
}
