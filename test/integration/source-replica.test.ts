/**
 * A source's read replica (INVENTORY_REPLICA_DATABASE_URL) under capture from the WAL: the
 * inventory database on a server of the test's own with a streaming standby
 * (test/support/private-postgres.ts), the orders database on the shared server. Repairs and verify
 * read rows on the standby, never on the primary, and only once it has replayed far enough: with its
 * replay paused they wait (a read of the lagging standby would bring back an image older than one
 * the store already has, or report a difference that is not there), and once it resumes they
 * finish with the store equal to the rule. An operator's look at a source's rows takes the standby
 * only once it has caught up, else the primary.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caughtUpReplicaOr } from '../../capture/replica';
import { withLogicalView } from '../../reconcile/source-view';
import { verifyView } from '../../reconcile/verify';
import { createWatermarkBackfill } from '../../activities/backfill/through-watermarks';
import { BACKFILL_TABLES } from '../../activities/backfill/backfill';
import { sourceRowsFor } from '../../capture/source-rows';
import { captureSources } from '../../capture/sources';
import { createPool } from '../../db/pool';
import { createSourceDatabase } from '../../scripts/lib/source-databases';
import { eventually, resetState, startDrain } from '../support/env';
import { usePipeline } from '../support/pipeline-fixture';
import { PrivatePostgres } from '../support/private-postgres';
import { readerUrl, startCaptureWorkflows, TEST_ORDERS_URL } from '../support/split-sources';
import { TEST_DATABASE_URL } from '../support/test-urls';
import { forgetSources, seedTwoFcShop, storeEqualsRule as twoSourcesEqualRule } from '../support/two-sources';

const SKUS = Array.from({ length: 20 }, (_, i) => `S-${i}`);
const DB = 'fresh_badges_inventory';

// Created before the worker starts: its configuration names the servers' ports.
const primary = await PrivatePostgres.create('replica-primary');
await createSourceDatabase({ url: primary.url(DB), tables: 'inventory', forCapture: true });
const standby = await primary.standby();
const config = {
  CAPTURE_MODE: 'logical',
  CAPTURE_TICK_MS: '20',
  INVENTORY_DATABASE_URL: readerUrl(primary.url(DB)),
  INVENTORY_REPLICA_DATABASE_URL: readerUrl(standby.url(DB)),
  ORDERS_DATABASE_URL: readerUrl(TEST_ORDERS_URL),
};

describe('reads on a source replica', () => {
  const f = usePipeline('source-replica', { worker: true, config });
  let inventory: pg.Pool;
  let orders: pg.Pool;
  let standbyAdmin: pg.Pool;
  let captures: { stop(): Promise<void> } | null = null;
  const sources = () => captureSources({ DATABASE_URL: TEST_DATABASE_URL, ...config });

  beforeAll(async () => {
    await createSourceDatabase({ url: TEST_ORDERS_URL, tables: 'orders', forCapture: true });
    await f.c.pool.query(`delete from pipeline.capture_progress`);
    await resetState(f.c);
    inventory = createPool(primary.url(DB), 4);
    orders = createPool(TEST_ORDERS_URL, 4);
    standbyAdmin = createPool(standby.url(DB), 2);
    captures = await startCaptureWorkflows(f.temporal.client, f.taskQueue, f.c.pool, sources());
    await startDrain(f.temporal.client, f.c.config, {
      taskQueue: f.taskQueue,
      workflowId: `drain-source-replica-${Date.now()}`,
      args: [{ intervalMs: 60_000, idleWaitMs: 200 }],
    });
    await seedTwoFcShop(inventory, SKUS);
    await orders.query(`insert into shop.orders (sku_id, fc_id, qty, status) values ('S-1', 'FC-1', 2, 'placed')`);
    await storeEqualsRule();
  }, 120_000);

  afterAll(async () => {
    await standbyAdmin?.query(`select pg_wal_replay_resume()`).catch(() => {});
    await captures?.stop().catch(() => {});
    await inventory?.end();
    await orders?.end();
    await standbyAdmin?.end();
    await standby.destroy();
    await primary.destroy(); // its slot goes with it
    await forgetSources(f.c.pool, TEST_ORDERS_URL, sources().find((s) => s.name === 'orders')!.slot);
  });

  const storeEqualsRule = () => twoSourcesEqualRule(f.c, { inventory, orders }, 30_000);
  /** Connections of the pipeline's readers on the standby. */
  const readersOnStandby = async (name: string) =>
    (
      await standbyAdmin.query<{ n: number }>(
        `select count(*)::int as n from pg_stat_activity where application_name = $1`,
        [name],
      )
    ).rows[0]!.n;
  /** Pauses the standby's replay, runs `change` on the primary, and starts `read`: it must wait for the replay. */
  async function readWhileReplayPaused<T>(change: () => Promise<unknown>, read: () => Promise<T>, reader: string) {
    await standbyAdmin.query(`select pg_wal_replay_pause()`);
    await change();
    let finished = false;
    const pending = read().finally(() => (finished = true));
    await eventually(async () => (await readersOnStandby(reader)) > 0, 10_000, `${reader} connected to the standby`);
    await sleep(1_500);
    expect(finished).toBe(false); // waiting for the replay, not reading an old image
    await standbyAdmin.query(`select pg_wal_replay_resume()`);
    return pending;
  }

  it('a repair reads its rows on the standby once it has replayed the change', async () => {
    const result = await readWhileReplayPaused(
      async () => {
        await inventory.query(`update shop.inventory set on_hand = 99 where sku_id = 'S-3' and fc_id = 'FC-1'`);
        await storeEqualsRule(); // the store has 99 from the stream: the standby's 20 is older
      },
      () => sourceRowsFor(f.c.config, f.c.pool).refresh([{ tbl: 'inventory', key: 'S-3|FC-1' }]),
      'fresh-badges-watermark',
    );
    expect(result.refreshed).toBe(1);
    await storeEqualsRule(); // on_hand 99, not the standby's older 20
  }, 60_000);

  it('verify takes its snapshot on the standby once it has replayed what the store holds', async () => {
    const report = await readWhileReplayPaused(
      async () => {
        await inventory.query(`update shop.skus set lifecycle = 'paused' where sku_id = 'S-4'`);
        await storeEqualsRule(); // in the store before verify starts: not a change made during it
      },
      () => f.acts.verifyStore({ badgeSkus: 10, settleMs: 5_000 }),
      'fresh-badges-verify',
    );
    expect(report.mismatches).toEqual([]); // the standby's older lifecycle is not reported as a difference
    expect(report.checkedSkus).toBeGreaterThanOrEqual(SKUS.length);
    await storeEqualsRule();
  }, 60_000);

  it("an operator's read of the rows (ops inspect, explain) takes the standby once caught up, else the primary, and says why", async () => {
    expect((await caughtUpReplicaOr(inventory, standbyAdmin, 'source inventory', 10_000)).db).toBe(standbyAdmin);
    await standbyAdmin.query(`select pg_wal_replay_pause()`);
    try {
      await inventory.query(`update shop.inventory set on_hand = on_hand + 1 where sku_id = 'S-3' and fc_id = 'FC-1'`);
      const read = await caughtUpReplicaOr(inventory, standbyAdmin, 'source inventory', 1_000);
      expect(read.db).toBe(inventory);
      expect(read.why).toMatch(/did not replay the source's WAL up to .* within 1 s: reading the primary instead/);
    } finally {
      await standbyAdmin.query(`select pg_wal_replay_resume()`);
    }
    // the primary down (when an operator looks most): the replica, said to maybe lag
    const down = createPool('postgres://postgres@127.0.0.1:1/nowhere', 1);
    try {
      const read = await caughtUpReplicaOr(down, standbyAdmin, 'source inventory', 1_000);
      expect(read.db).toBe(standbyAdmin);
      expect(read.why).toMatch(/primary of source inventory cannot be reached .*: reading its replica, which may lag/);
    } finally {
      await down.end();
    }
    await storeEqualsRule();
  });

  it('a replica that cannot be reached: a repair, verify and the row estimates of a refill read the primary instead of failing while it is down', async () => {
    await inventory.query(`update shop.inventory set on_hand = 42 where sku_id = 'S-6' and fc_id = 'FC-1'`);
    const unreachable = { ...f.c.config, INVENTORY_REPLICA_DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nowhere' };
    const result = await sourceRowsFor(unreachable, f.c.pool).refresh([{ tbl: 'inventory', key: 'S-6|FC-1' }]);
    expect(result.refreshed).toBe(1);
    await storeEqualsRule();
    // and verify's snapshot
    const report = await withLogicalView(captureSources(unreachable), f.c.pool, (view) =>
      verifyView(view, f.c.redis, f.c.keys, { badgeSkus: 0, settleMs: 5_000 }),
    );
    expect(report.mismatches).toEqual([]);
    // and a refill's first step (its row estimates for progress)
    const plan = await createWatermarkBackfill({ ...f.c, config: unreachable }).plan();
    expect(Object.keys(plan).sort()).toEqual([...BACKFILL_TABLES].sort());
  }, 60_000);

  // Last: it leaves the standby on a history the primary no longer has. The primary is restored
  // from an older copy; the standby, never rebuilt, has received more WAL than the restored
  // primary holds and cannot follow it, yet it answers queries with the changes the restore took
  // away. Capture finds the restore and the store is refilled: from the primary, since a replica
  // holding WAL past the primary's position is not read (capture/replica.ts).
  it('a standby left on a history the restored primary no longer has is not read: the refill reads the primary', async () => {
    const copy = await primary.copyData();
    await inventory.query(`update shop.inventory set on_hand = 77 where sku_id = 'S-5' and fc_id = 'FC-1'`);
    await storeEqualsRule(); // the restock, promised
    // WAL the standby receives and the copy never had: the standby ends well past the restored primary
    await inventory.query(
      `create table public.wal_filler as select repeat('x', 1000) as x from generate_series(1, 20000)`,
    );
    const end = (await inventory.query<{ l: string }>(`select pg_current_wal_insert_lsn()::text as l`)).rows[0]!.l;
    await eventually(
      async () =>
        (await standbyAdmin.query<{ ok: boolean }>(`select pg_last_wal_replay_lsn() >= $1::pg_lsn as ok`, [end]))
          .rows[0]!.ok,
      20_000,
      'the standby replayed the filler',
    );
    await primary.restoreData(copy);
    const onStandby = await standbyAdmin.query(
      `select on_hand from shop.inventory where sku_id = 'S-5' and fc_id = 'FC-1'`,
    );
    expect(onStandby.rows[0].on_hand).toBe(77); // what a read of the standby would bring back
    await twoSourcesEqualRule(f.c, { inventory, orders }, 90_000); // the restored primary's stock, not 77
  }, 150_000);
});
