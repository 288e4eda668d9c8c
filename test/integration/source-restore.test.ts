/**
 * A source restored from a disk snapshot, its replication slot with it (issue 23: "never a false
 * fresh answer after a failover of any database"). The inventory database is on a server of the
 * test's own (test/support/private-postgres.ts); its data folder is copied, a restock is captured
 * and applied (the store promises), then the server is restored from the copy: the source no
 * longer has the restock, its slot is back behind what the pipeline recorded, and its new history
 * reuses the WAL positions the pipeline recorded as written.
 *  - No answer is fresh as of after the restore and still promises the restock the source lost.
 *  - The capture tells the history apart (capture/history-check.ts), marks the source lost, the
 *    store is emptied and refilled by itself, reads go fresh again, and the store ends equal to the
 *    rule over both sources (nothing of the new history skipped as "already written").
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
const SKUS = Array.from({ length: 20 }, (_, i) => `S-${i}`);

// Created before the worker starts: its configuration names the server's port.
const server = await PrivatePostgres.create('source-restore');
const inventoryUrl = server.url('fresh_badges_inventory');
const config = {
  CAPTURE_MODE: 'logical',
  CAPTURE_TICK_MS: '20',
  INVENTORY_DATABASE_URL: readerUrl(inventoryUrl),
  ORDERS_DATABASE_URL: readerUrl(TEST_ORDERS_URL),
};

describe('a source restored from a disk snapshot with its slot', () => {
  const f = usePipeline('source-restore', { worker: true, api: { staleAfterMs: STALE_AFTER_MS }, config });
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
    captures = await startCaptureWorkflows(f.temporal.client, f.taskQueue, f.c.pool, sources());
    await startDrain(f.temporal.client, f.c.config, {
      taskQueue: f.taskQueue,
      workflowId: `drain-source-restore-${Date.now()}`,
      args: [{ intervalMs: 60_000, idleWaitMs: 200 }],
    });
    await seedTwoFcShop(inventory, [...SKUS, 'PROBE']);
    await inventory.query(`update shop.inventory set on_hand = 0, reserved = 0 where sku_id = 'PROBE'`);
  }, 120_000);

  afterAll(async () => {
    await captures?.stop().catch(() => {});
    await inventory?.end();
    await orders?.end();
    await server.destroy();
    await forgetSources(f.c.pool, TEST_ORDERS_URL, sources().find((s) => s.name === 'orders')!.slot);
  });

  const badge = async (sku: string) => (await get(`${f.api.base}/v1/badges/${sku}?region=R1`)).body;

  it('never promises what the restore took away, refills by itself and skips nothing new', async () => {
    await eventually(
      async () => {
        const b = await badge('PROBE');
        return !b.stale && b.reason === 'out_of_stock';
      },
      30_000,
      'PROBE out of stock, fresh',
    );
    const copy = await server.copyData();
    // The restock, captured and applied: the store promises PROBE.
    await inventory.query(`update shop.inventory set on_hand = 50 where sku_id = 'PROBE'`);
    let writing = true;
    const writer = writeInventory(inventory, () => writing);
    await eventually(async () => (await badge('PROBE')).eligible === true, 30_000, 'the restock promised');
    await sleep(1_000); // more history captured past the restock
    writing = false;
    await writer;

    await server.restoreData(copy);
    const restoredAt = Date.now();
    // The restored server's WAL moves on past what the pipeline recorded (archive_timeout does this
    // in production), so its new transactions end at positions the pipeline recorded as written.
    await inventory.query(`select pg_switch_wal()`).catch(() => undefined);
    const falsePromises: unknown[] = [];
    let reading = true;
    const reader = (async () => {
      while (reading) {
        const b = await badge('PROBE');
        if (!b.stale && Date.parse(b.asOf) >= restoredAt && b.eligible) falsePromises.push(b);
        await sleep(25);
      }
    })();
    writing = true;
    const newHistory = writeInventory(inventory, () => writing);
    await eventually(
      async () => {
        const b = await badge('PROBE');
        return !b.stale && Date.parse(b.asOf) >= restoredAt && b.reason === 'out_of_stock';
      },
      60_000,
      'reads fresh again after the refill, PROBE out of stock as the restored source says',
    );
    console.log(`source restore healed ${Date.now() - restoredAt} ms after the server accepted connections`);
    writing = false;
    await newHistory;
    reading = false;
    await reader;
    expect(falsePromises).toEqual([]);
    const lost = await f.c.pool.query(
      `select count(*)::int as n from pipeline.outbox where op = 'T' and tbl = 'inventory'`,
    );
    expect(lost.rows[0].n).toBeGreaterThan(0); // the source was marked lost (refilled)
    await twoSourcesEqualRule(f.c, { inventory, orders }, 30_000, 'the store to equal the rule over both sources');
  }, 150_000);
});

/** Stock moving until told to stop (PROBE left alone); writes that meet the server down are not counted. */
async function writeInventory(inventory: pg.Pool, going: () => boolean): Promise<void> {
  for (let i = 0; going(); i++) {
    const sku = SKUS[(i * 7) % SKUS.length]!;
    try {
      await inventory.query(
        `update shop.inventory set on_hand = 10 + ($3::int % 30) where sku_id = $1 and fc_id = $2`,
        [sku, i % 2 ? 'FC-1' : 'FC-2', i],
      );
    } catch {
      await sleep(100);
    }
    await sleep(5);
  }
}
