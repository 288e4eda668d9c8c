/**
 * A source database failing over to its standby (issue 23, point 6): the inventory database on a
 * server of the test's own with a streaming standby (test/support/private-postgres.ts), reached
 * through a stable address (a TCP proxy, as DNS or a virtual IP gives). The primary is shut down,
 * the standby promoted and the address moved to it. PostgreSQL 15 does not carry logical slots to
 * a standby: the capture finds its slot gone, creates one, marks the source lost and starts the
 * refill (backfill-auto) by itself.
 *  - A probe committed on the new primary before its slot existed is in no stream: no answer is
 *    fresh as of after it without it, until the refill brings it.
 *  - The store ends equal to the rule over both sources, and the lost mark is cleared.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCaptureStatus } from '../../capture/capture-status';
import { captureSources } from '../../capture/sources';
import { createPool } from '../../db/pool';
import { createSourceDatabase } from '../../scripts/lib/source-databases';
import { eventually, resetState, startDrain } from '../support/env';
import { startFaultProxy } from '../support/fault-proxy';
import { get } from '../support/http';
import { usePipeline } from '../support/pipeline-fixture';
import { PrivatePostgres } from '../support/private-postgres';
import { readerUrl, startCaptureWorkflows, TEST_ORDERS_URL } from '../support/split-sources';
import { TEST_DATABASE_URL } from '../support/test-urls';
import { forgetSources, seedTwoFcShop, storeEqualsRule as twoSourcesEqualRule } from '../support/two-sources';

const STALE_AFTER_MS = 1_500;
const SKUS = Array.from({ length: 30 }, (_, i) => `S-${i}`);
const DB = 'fresh_badges_inventory';

// Created before the worker starts: its configuration names the address.
const primary = await PrivatePostgres.create('failover-primary');
await createSourceDatabase({ url: primary.url(DB), tables: 'inventory', forCapture: true });
const standby = await primary.standby();
const address = await startFaultProxy({ host: '127.0.0.1', port: primary.port });
/** The server the address leads to (the standby once the first case promoted it). */
let current = primary;
const inventoryUrl = `postgres://postgres@127.0.0.1:${address.port}/${DB}`;
const config = {
  CAPTURE_MODE: 'logical',
  CAPTURE_TICK_MS: '20',
  INVENTORY_DATABASE_URL: readerUrl(inventoryUrl),
  ORDERS_DATABASE_URL: readerUrl(TEST_ORDERS_URL),
};

describe('a source failing over to its standby', () => {
  const f = usePipeline('source-failover', { worker: true, api: { staleAfterMs: STALE_AFTER_MS }, config });
  let inventory: pg.Pool;
  let orders: pg.Pool;
  let captures: { stop(): Promise<void> } | null = null;
  const sources = () => captureSources({ DATABASE_URL: TEST_DATABASE_URL, ...config });

  beforeAll(async () => {
    await createSourceDatabase({ url: TEST_ORDERS_URL, tables: 'orders', forCapture: true });
    await f.c.pool.query(`delete from pipeline.capture_progress`);
    await resetState(f.c);
    inventory = createPool(inventoryUrl, 4);
    orders = createPool(TEST_ORDERS_URL, 4);
    captures = await startCaptureWorkflows(f.temporal.client, f.taskQueue, f.c.pool, sources());
    await startDrain(f.temporal.client, f.c.config, {
      taskQueue: f.taskQueue,
      workflowId: `drain-source-failover-${Date.now()}`,
      args: [{ intervalMs: 60_000, idleWaitMs: 200 }],
    });
    await seedTwoFcShop(inventory, [...SKUS, 'PROBE']);
    await inventory.query(`update shop.skus set lifecycle = 'paused' where sku_id = 'PROBE'`);
    await orders.query(`insert into shop.orders (sku_id, fc_id, qty, status) values ('S-1', 'FC-1', 2, 'placed')`);
    await storeEqualsRule();
  }, 120_000);

  afterAll(async () => {
    await captures?.stop().catch(() => {});
    await address.close(); // first: it ends the connections it stranded, which an end() would wait on
    await inventory?.end();
    await orders?.end();
    await standby.destroy();
    await primary.destroy();
    await forgetSources(f.c.pool, TEST_ORDERS_URL, sources().find((s) => s.name === 'orders')!.slot);
  });

  const storeEqualsRule = () => twoSourcesEqualRule(f.c, { inventory, orders }, 60_000);
  const badge = async (sku: string) => (await get(`${f.api.base}/v1/badges/${sku}?region=R1`)).body;

  it('the slot gone with the old primary is created again, reads stay honest, the refill brings the store back', async () => {
    // A planned failover: a clean shutdown sends the standby everything, then it is promoted.
    address.cut();
    await primary.stop('fast');
    await standby.promote();
    address.retarget({ host: '127.0.0.1', port: standby.port });
    current = standby;
    // Before the capture can reach the new primary (and create its slot there), a probe commits
    // on it: the probe is in no slot's stream.
    const direct = createPool(standby.url(DB), 1);
    await direct.query(`update shop.skus set lifecycle = 'active' where sku_id = 'PROBE'`);
    await direct.end();
    const probeAt = Date.now();
    address.heal();

    const falseFresh: unknown[] = [];
    await eventually(
      async () => {
        const b = await badge('PROBE');
        if (b.stale || Date.parse(b.asOf) < probeAt) return null;
        if (b.reason === 'paused') falseFresh.push(b); // fresh as of after the probe, without it
        return b.reason !== 'paused';
      },
      60_000,
      'a fresh answer with the probe',
    );
    expect(falseFresh).toEqual([]);
    await storeEqualsRule();
    const status = (await readCaptureStatus(f.c.config, f.c.pool)).find((s) => s.source === 'inventory')!;
    expect(status.lostAtMs).toBeNull(); // cleared by the refill
    expect(status.slotState).toMatchObject({ exists: true, active: true });
  }, 120_000);

  // The source's address moves on while the connections to the old host stay open and silent (a
  // host lost without a reset, a path that dropped its state): nothing errors, the stream just
  // stops, and a capture waiting on its tick waited for the kernel to give up (about 15 minutes;
  // forever behind this proxy). A tick with no answer ends the session; the next connects anew.
  it('connections to the source gone silent without a reset: capture connects again by itself, reads stale meanwhile', async () => {
    const direct = createPool(current.url(DB), 2); // (the test's own pool through the address is stranded too)
    const server = createPool(current.url('postgres'), 1);
    // the old walsender gives the slot up once its client has been silent this long (default 60 s)
    await server.query(`alter system set wal_sender_timeout = '5s'`);
    await server.query(`select pg_reload_conf()`);
    try {
      await twoSourcesEqualRule(f.c, { inventory: direct, orders }, 60_000);
      address.strand();
      await direct.query(`update shop.inventory set on_hand = 0 where sku_id = 'S-7'`);
      const changedAt = Date.now();
      const falseFresh: unknown[] = [];
      await eventually(
        async () => {
          const b = await badge('S-7');
          if (b.stale || Date.parse(b.asOf) < changedAt) return false;
          if (b.reason === 'eligible') falseFresh.push(b); // fresh as of after the sell-out, without it
          return true;
        },
        90_000,
        'a fresh answer as of after the change',
      );
      expect(falseFresh).toEqual([]);
      await twoSourcesEqualRule(f.c, { inventory: direct, orders }, 30_000);
    } finally {
      await server.query(`alter system reset wal_sender_timeout`);
      await server.query(`select pg_reload_conf()`);
      await server.end();
      await direct.end();
    }
  }, 150_000);
});
