/**
 * Filling and refilling the store from sources captured from the WAL (CAPTURE_MODE=logical), with
 * nothing written into them: every row and every FC's daily load re-read between watermarks
 * (activities/backfill/through-watermarks.ts), applied by the drain in order with the changes
 * flowing meanwhile.
 *  - Sources that already hold data when capture starts: the drain finds the store without an
 *    epoch and starts the backfill; with order traffic running throughout, the store ends equal to
 *    the rule over both sources (a load set in the wrong place, or a delta counted twice, would
 *    show) and reads go fresh.
 *  - A slot lost under traffic: its source is marked lost, reads go stale, the drain empties the
 *    store and starts a backfill by itself, and once it is done the store equals the rule, with
 *    the changes made while the slot was gone (rows deleted meanwhile gone from the store too),
 *    and reads go fresh again.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../../db/pool';
import { compareSnapshots } from '../../reconcile/compare';
import { sourceFeatures } from '../../reconcile/source-features';
import { storeFeatures } from '../../reconcile/store-features';
import { FIELD } from '../../store/names';
import { finishBackfill } from '../../activities/backfill/backfill';
import { AUTO_BACKFILL_ID } from '../../workflows';
import { drainLockName, drainShards } from '../../outbox';
import { eventually, resetState, startDrain, TEST_DATABASE_URL } from '../support/env';
import { get } from '../support/http';
import { usePipeline } from '../support/pipeline-fixture';
import {
  createSplitSources,
  dropSlotUnderCapture,
  dropSplitSourceSlots,
  resetCaptureProgress,
  SPLIT_SOURCE_CONFIG,
  splitSources,
  startCaptureWorkflows,
  TEST_INVENTORY_URL,
  TEST_ORDERS_URL,
} from '../support/split-sources';

/** A source of an earlier layout, recorded and no longer configured (the layout-change case). */
const RETIRED_SOURCE = 'shop';
const SKUS = Array.from({ length: 60 }, (_, i) => `S-${i}`);

describe('backfill from sources captured from the WAL', () => {
  const f = usePipeline('logical-backfill', {
    worker: true,
    api: { staleAfterMs: 1_500 },
    // two store partitions: each holds a copy of every FC's daily load, which a refill sets
    config: { ...SPLIT_SOURCE_CONFIG, CAPTURE_TICK_MS: '20', BACKFILL_CHUNK_ROWS: '100', STORE_PARTITIONS: '2' },
  });
  let inventory: pg.Pool;
  let orders: pg.Pool;
  let captures: { stop(): Promise<void> } | null = null;

  /** Orders placed, shipped and cancelled, and stock moving, until stop() (one writer per source). */
  const traffic = () => {
    let running = true;
    let n = 0;
    const done = (async () => {
      while (running) {
        const sku = SKUS[n % SKUS.length]!;
        const fc = n % 3 === 0 ? 'FC-2' : 'FC-1';
        await orders.query(`insert into shop.orders (sku_id, fc_id, qty, status) values ($1, $2, $3, 'placed')`, [
          sku,
          fc,
          1 + (n % 3),
        ]);
        if (n % 4 === 0)
          await orders.query(
            `update shop.orders set status = 'cancelled' where order_id = (select min(order_id) from shop.orders where status = 'placed')`,
          );
        await inventory.query(`update shop.inventory set on_hand = on_hand + 1 where sku_id = $1 and fc_id = $2`, [
          sku,
          fc,
        ]);
        n++;
      }
    })();
    return {
      async stop() {
        running = false;
        await done;
        return n;
      },
    };
  };
  const storeEqualsRule = async () => {
    const diff = compareSnapshots(
      await sourceFeatures({ inventory, orders }),
      await storeFeatures(f.c.redis, f.c.keys),
    );
    if (diff.length) throw new Error(`${diff.length} differences, e.g. ${JSON.stringify(diff.slice(0, 3))}`);
    return true;
  };
  /**
   * With capture stopped, drops the source's slot and makes the changes `meanwhile` (lost with
   * it); then starts capture again and waits for the refill the loss starts: the capture marks the
   * source lost (and writes a TRUNCATE of its tables), the drain empties the store and starts a
   * backfill, which clears the mark when done.
   */
  const loseSlot = async (
    source: 'inventory' | 'orders',
    meanwhile: () => Promise<unknown>,
    /** The source joins as new instead: its record replaced by one of a layout no longer configured. */
    asLayoutChange = false,
  ) => {
    // A backfill still under way (an earlier case's, asked again) would take the loss's place: the
    // drain asks for the next one only after its back-off, later than this waits.
    await eventually(
      async () =>
        (await f.temporal.client.workflow.count(`WorkflowId = '${AUTO_BACKFILL_ID}' AND ExecutionStatus = 'Running'`))
          .count === 0,
      60_000,
      'no backfill under way before the loss',
    );
    await captures!.stop();
    const slot = splitSources().find((s) => s.name === source)!.slot;
    await dropSlotUnderCapture(source === 'inventory' ? TEST_INVENTORY_URL : TEST_ORDERS_URL, slot);
    if (asLayoutChange) {
      await f.c.pool.query(`delete from pipeline.capture_progress where source = $1`, [source]);
      await f.c.pool.query(
        `insert into pipeline.capture_progress (source, slot, lsn, covered_at) values ($1, 'fb_old_layout', '0/1', now())`,
        [RETIRED_SOURCE],
      );
    }
    await meanwhile();
    const backfills = async () => (await f.temporal.client.workflow.count(`WorkflowId = '${AUTO_BACKFILL_ID}'`)).count;
    const before = await backfills();
    captures = await startCaptureWorkflows(f.temporal.client, f.taskQueue, f.c.pool);
    await eventually(async () => (await backfills()) > before, 20_000, 'a backfill started after the loss');
  };
  /** Waits until a read of `sku` is fresh, and then the store must equal the rule. */
  const freshOnceEqual = (sku: string, what: string) =>
    eventually(
      async () => {
        const r = (await get(`${f.api.base}/v1/badges/${sku}?region=R1`)).body;
        if (r.stale) return false;
        await storeEqualsRule();
        return true;
      },
      60_000,
      what,
    );
  const fresh = async () => !(await get(`${f.api.base}/v1/badges/S-1?region=R1`)).body.stale;

  beforeAll(async () => {
    await createSplitSources();
    await resetCaptureProgress(f.c.pool);
    await resetState(f.c);
    for (const p of f.c.keys.partitions) await f.c.redis.del(p.epoch); // no epoch: the store was never filled
    inventory = createPool(TEST_INVENTORY_URL, 4);
    orders = createPool(TEST_ORDERS_URL, 4);
    // The sources hold data before any slot exists: only a backfill can bring it in.
    await inventory.query(
      `insert into shop.fulfillment_centers values ('FC-1', 'R1', 40, now()), ('FC-2', 'R1', 1000, now())`,
    );
    await inventory.query(`insert into shop.region_fc values ('R1', 'FC-1', 1), ('R1', 'FC-2', 2)`);
    await inventory.query(`insert into shop.skus select unnest($1::text[]), 't', 'active', now()`, [SKUS]);
    await inventory.query(
      `insert into shop.inventory select s, fc, 10, 0, now() from unnest($1::text[]) s, (values ('FC-1'), ('FC-2')) v(fc)`,
      [SKUS],
    );
    await orders.query(
      `insert into shop.orders (sku_id, fc_id, qty, status) select s, 'FC-1', 1, 'placed' from unnest($1::text[]) s`,
      [SKUS],
    );
  }, 60_000);

  afterAll(async () => {
    // a backfill left running (its worker goes with this file) would keep the next file's drain
    // from starting its own: one id for every run
    await f.temporal.client.workflow
      .getHandle(AUTO_BACKFILL_ID)
      .terminate('test file over')
      .catch(() => undefined);
    await captures?.stop();
    await inventory?.end();
    await orders?.end();
    await dropSplitSourceSlots();
    await resetCaptureProgress(f.c.pool);
  });

  it('fills the store from sources that held data before capture began, under traffic', async () => {
    const started = Date.now();
    captures = await startCaptureWorkflows(f.temporal.client, f.taskQueue, f.c.pool);
    const load = traffic();
    await startDrain(f.temporal.client, f.c.config, {
      taskQueue: f.taskQueue,
      workflowId: `drain-logical-backfill-${Date.now()}`,
      args: [{ intervalMs: 60_000, idleWaitMs: 200, backfillChunkRows: 100, backfillRowsPerSecond: 0 }],
    });
    // (an earlier file's backfill-auto may be in the namespace's history: this one started now)
    const runId = await eventually(
      async () => {
        for await (const wf of f.temporal.client.workflow.list({
          query: `WorkflowId = '${AUTO_BACKFILL_ID}' AND StartTime > '${new Date(started).toISOString()}'`,
        }))
          return wf.runId;
        return null;
      },
      20_000,
      'the drain to start the backfill',
    );
    await f.temporal.client.workflow.getHandle(AUTO_BACKFILL_ID, runId).result();
    expect(await load.stop()).toBeGreaterThan(20);
    await eventually(storeEqualsRule, 30_000, 'the store to equal the rule over both sources');
    await eventually(fresh, 10_000, 'reads fresh');
  }, 120_000);

  it('refills by itself after a slot is lost, with the changes made while it was gone', async () => {
    const load = traffic();
    await loseSlot('orders', () =>
      orders.query(
        `update shop.orders set qty = qty + 5 where order_id = (select min(order_id) from shop.orders where status = 'placed')`,
      ),
    );
    await f.temporal.client.workflow.getHandle(AUTO_BACKFILL_ID).result();
    expect(await load.stop()).toBeGreaterThan(10);
    await eventually(storeEqualsRule, 30_000, 'the store to equal the rule, lost changes included');
    expect(
      (await f.c.pool.query(`select lost_at from pipeline.capture_progress where source = 'orders'`)).rows[0].lost_at,
    ).toBeNull();
    await eventually(fresh, 10_000, 'reads fresh again');
  }, 120_000);

  // Rows deleted while the slot was gone leave no change behind: a refill of the rows the source
  // still has would keep them in the store, and serve them as fresh once it is done.
  it('drops from the store the rows deleted while a slot was gone', async () => {
    await loseSlot('inventory', async () => {
      await inventory.query(`delete from shop.inventory where sku_id = 'S-5' and fc_id = 'FC-1'`);
      await inventory.query(`delete from shop.region_fc where region = 'R1' and fc_id = 'FC-2'`);
    });
    await freshOnceEqual('S-5', 'reads fresh again, the deleted rows gone from the store');
    expect(
      (await f.c.pool.query(`select lost_at from pipeline.capture_progress where source = 'inventory'`)).rows[0]
        .lost_at,
    ).toBeNull();
  }, 120_000);

  // The orders table moved to a database of its own (the layout changed): the new source's slot
  // never sends the changes made before it existed, and the store was complete. Without the
  // joining source marked lost, reads would go fresh without them.
  it('refills a store when a source joins a pipeline that captured another layout', async () => {
    await loseSlot(
      'orders',
      () =>
        orders.query(
          `update shop.orders set qty = qty + 7 where order_id = (select min(order_id) from shop.orders where status = 'placed')`,
        ),
      true,
    );
    await freshOnceEqual('S-1', 'reads fresh again, with the changes made before the new slot existed');
    const rows = (await f.c.pool.query(`select source, lost_at from pipeline.capture_progress order by source`)).rows;
    expect(rows).toEqual([
      { source: 'inventory', lost_at: null },
      { source: 'orders', lost_at: null },
    ]);
  }, 120_000);

  // A load counter one partition's copy holds and the source has no orders for (the copies differ
  // for a moment with several drain shards; a verify finds one wrong): the refill zeroes it by its
  // name. Read as "<key>@p1" (how a comparison shows copies that differ), it became a change no
  // order row can carry: a dead letter on every try, the FC's reads held stale, the copy kept.
  it('a refill of the loads zeroes a counter only one partition holds, with no dead letter', async () => {
    await eventually(storeEqualsRule, 30_000, 'the store to equal the rule first');
    const day = new Date().toISOString().slice(0, 10).replaceAll('-', '');
    const copy = f.c.keys.partitions[1]!;
    await f.c.redis.hset(copy.load('FC-1', day), FIELD.loadCount, '1000'); // FC-1 has orders today
    await f.c.redis.hset(copy.load('FC-9', day), FIELD.loadCount, '5'); // FC-9 has none
    await expect(storeEqualsRule()).rejects.toThrow(/differences/);
    await f.acts.backfillLoads({});
    await eventually(storeEqualsRule, 30_000, 'the copy set to the source again');
    expect((await f.c.pool.query(`select count(*)::int as n from pipeline.dead_letters`)).rows[0].n).toBe(0);
  }, 60_000);

  // After the store was emptied (a TRUNCATE, a lost slot), the delta of an order cancelled since
  // may still wait in the outbox when the refill reads the loads. With the FC's day left out of the
  // refill (no order of it counted any more), nothing held that delta back: it created the counter
  // at minus the order's quantity, and reads said fresh with the FC's load too low.
  it('a refill of the loads sets an FC day whose orders were all cancelled, so a waiting delta cannot make it negative', async () => {
    await eventually(storeEqualsRule, 30_000, 'the store to equal the rule first');
    const day = new Date().toISOString().slice(0, 10).replaceAll('-', '');
    const counters = () =>
      Promise.all(f.c.keys.partitions.map((p) => f.c.redis.hget(p.load('FC-7', day), FIELD.loadCount)));
    const placed = await orders.query<{ order_id: string }>(
      `insert into shop.orders (sku_id, fc_id, qty, status) values ('S-1', 'FC-7', 4, 'placed') returning order_id::text`,
    );
    const orderId = placed.rows[0]!.order_id;
    await eventually(async () => (await counters()).every((n) => n === '4'), 20_000, 'the order counted');
    const holder = new pg.Client({ connectionString: TEST_DATABASE_URL }); // holds the drain back
    await holder.connect();
    try {
      await holder.query('begin');
      for (const shard of drainShards(f.c.config.DRAIN_SHARDS))
        await holder.query(`select pg_advisory_xact_lock(hashtext($1))`, [drainLockName(shard.consumer)]);
      for (const p of f.c.keys.partitions) await f.c.redis.del(p.load('FC-7', day)); // as emptied
      await orders.query(`update shop.orders set status = 'cancelled' where order_id = $1`, [orderId]);
      await eventually(
        async () =>
          (
            await f.c.pool.query(
              `select 1 from pipeline.outbox where tbl = 'orders' and key = $1 and image->>'status' = 'cancelled'`,
              [orderId],
            )
          ).rowCount === 1,
        20_000,
        'the cancellation captured, not applied',
      );
      await f.acts.backfillLoads({});
      expect(await counters()).toEqual(f.c.keys.partitions.map(() => null)); // nothing applied yet
    } finally {
      await holder.query('commit');
      await holder.end();
    }
    await eventually(storeEqualsRule, 30_000, 'the store to equal the rule, no counter below zero');
    expect((await counters()).map(Number)).toEqual(f.c.keys.partitions.map(() => 0));
  }, 60_000);

  /**
   * `fn` with a source marked lost (its lost_at read by the function passed), then the source row
   * deleted and every partition's epoch put back as it was.
   */
  async function withLostSource(name: string, fn: (lostAt: () => Promise<Date | null>) => Promise<void>) {
    const epochs = await Promise.all(f.c.keys.partitions.map((p) => f.c.redis.get(p.epoch)));
    const lostSource = `${name}-${process.pid}`;
    await f.c.pool.query(`insert into pipeline.capture_progress (source, slot, lost_at) values ($1, 'none', now())`, [
      lostSource,
    ]);
    try {
      await fn(
        async () =>
          (await f.c.pool.query(`select lost_at from pipeline.capture_progress where source = $1`, [lostSource]))
            .rows[0].lost_at,
      );
    } finally {
      await f.c.pool.query(`delete from pipeline.capture_progress where source = $1`, [lostSource]);
      for (const [i, p] of f.c.keys.partitions.entries())
        if (epochs[i] !== null) await f.c.redis.set(p.epoch, epochs[i]!);
    }
  }

  // Steps are counted under capture from the WAL too: a partition short of the backfill's last step
  // (a Redis restored from an older file) is not marked complete, and a source lost before the
  // backfill stays lost until a backfill completes every partition.
  it('a finish whose last step the store lacks leaves it incomplete and the lost source lost', async () => {
    await withLostSource('steps-test', async (lostAt) => {
      const marker = 'logical-steps-test';
      await f.acts.backfillPlan({ marker }); // every partition marked, at step 0
      const short = await f.acts.finishBackfill({ epoch: 'steps-test-epoch', marker, steps: 3 });
      expect(short.incomplete).toEqual(f.c.keys.partitions.map((_, i) => i));
      expect(await lostAt()).not.toBeNull();
      const done = await f.acts.finishBackfill({ epoch: 'steps-test-epoch', marker, steps: 0 });
      expect(done.incomplete).toEqual([]);
      expect(await lostAt()).toBeNull();
    });
  }, 60_000);

  // The finish marks the store complete in Redis, then clears the lost source in the pipeline
  // database: a worker killed between the two (or that update failing) has the activity retried,
  // and the retry, finding its own epoch set and the marker gone, must not take the store for
  // rebuilt meanwhile. Otherwise the source stayed lost, reads stale for good, with nothing to
  // start another backfill (the store has its epoch).
  it('a finish retried after its Redis step completed still clears the lost source', async () => {
    await withLostSource('retried-finish', async (lostAt) => {
      const marker = 'logical-retried-finish';
      await f.acts.backfillPlan({ marker });
      // the first attempt's Redis step, and no more: the worker died before the update
      expect(await finishBackfill(f.c.redis, f.c.keys, 'retried-finish-epoch', marker, 0)).toEqual({ incomplete: [] });
      expect(await lostAt()).not.toBeNull();
      const retried = await f.acts.finishBackfill({ epoch: 'retried-finish-epoch', marker, steps: 0 });
      expect(retried.incomplete).toEqual([]);
      expect(await lostAt()).toBeNull();
      // a partition rebuilt after the finish (its epoch gone) is still found incomplete by a retry
      await f.c.redis.del(f.c.keys.partitions[0]!.epoch);
      const afterRebuild = await f.acts.finishBackfill({ epoch: 'retried-finish-epoch', marker, steps: 0 });
      expect(afterRebuild.incomplete).toEqual([0]);
    });
  }, 60_000);
});
