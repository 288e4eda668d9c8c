/**
 * Verify under capture from the WAL of two source databases (reconcile/source-view.ts): the store
 * is compared with the rule computed from each source's own snapshot, once each capture has written
 * past the snapshot's WAL position and the drain has applied it.
 *  - Under order and stock traffic on both sources, a correct store reports nothing, run after run.
 *  - Damage (stock the source does not have, a wrong daily load of a quiet FC, a SKU the source never had) is
 *    found, and repaired through watermarks and a load-sum chunk, with nothing written into a
 *    source; afterwards the store equals the rule again.
 *  - The badges it compares across the two databases agree with the store's.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../../db/pool';
import { compareSnapshots } from '../../reconcile/compare';
import { sourceBadges } from '../../reconcile/source-badges';
import { sourceFeatures } from '../../reconcile/source-features';
import { storeFeatures } from '../../reconcile/store-features';
import { createBadgeReader } from '../../serving/badge-reader';
import { LIFECYCLE_FIELD } from '../../store/keys';
import { FIELD } from '../../store/names';
import { utcDay } from '../../features/definitions';
import { eventually, resetState, startDrain } from '../support/env';
import { usePipeline } from '../support/pipeline-fixture';
import {
  createSplitSources,
  dropSplitSourceSlots,
  resetCaptureProgress,
  SPLIT_SOURCE_CONFIG,
  startCaptureWorkflows,
  TEST_INVENTORY_URL,
  TEST_ORDERS_URL,
} from '../support/split-sources';

const SKUS = Array.from({ length: 80 }, (_, i) => `S-${i}`);

describe('verify on sources captured from the WAL', () => {
  const f = usePipeline('logical-verify', {
    worker: true,
    config: { ...SPLIT_SOURCE_CONFIG, CAPTURE_TICK_MS: '20' },
  });
  let inventory: pg.Pool;
  let orders: pg.Pool;
  let captures: { stop(): Promise<void> } | null = null;

  /** Orders placed and cancelled (FC-1 near capacity), stock moving, until stop(). */
  const traffic = () => {
    let running = true;
    let n = 0;
    const done = (async () => {
      while (running) {
        const sku = SKUS[n % SKUS.length]!;
        const fc = n % 3 === 0 ? 'FC-2' : 'FC-1';
        await orders.query(`insert into shop.orders (sku_id, fc_id, qty, status) values ($1, $2, 1, 'placed')`, [
          sku,
          fc,
        ]);
        if (n % 2 === 0)
          await orders.query(
            `update shop.orders set status = 'cancelled' where order_id = (select min(order_id) from shop.orders where status = 'placed')`,
          );
        await inventory.query(
          `update shop.inventory set on_hand = (on_hand + 1) % 4 where sku_id = $1 and fc_id = $2`,
          [sku, fc],
        );
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

  beforeAll(async () => {
    await createSplitSources();
    await resetCaptureProgress(f.c.pool);
    await resetState(f.c);
    inventory = createPool(TEST_INVENTORY_URL, 4);
    orders = createPool(TEST_ORDERS_URL, 4);
    captures = await startCaptureWorkflows(f.temporal.client, f.taskQueue, f.c.pool);
    await startDrain(f.temporal.client, f.c.config, {
      taskQueue: f.taskQueue,
      workflowId: `drain-logical-verify-${Date.now()}`,
      args: [{ intervalMs: 60_000, idleWaitMs: 200 }],
    });
    await inventory.query(
      `insert into shop.fulfillment_centers values ('FC-1', 'R1', 30, now()), ('FC-2', 'R1', 1000, now()), ('FC-3', 'R2', 10, now())`,
    );
    await inventory.query(`insert into shop.region_fc values ('R1', 'FC-1', 1), ('R1', 'FC-2', 2), ('R2', 'FC-3', 1)`);
    await inventory.query(`insert into shop.skus select unnest($1::text[]), 't', 'active', now()`, [SKUS]);
    await inventory.query(`insert into shop.skus values ('QUIET', 't', 'active', now())`); // never touched by traffic
    await inventory.query(
      `insert into shop.inventory select s, fc, 2, 0, now() from unnest($1::text[] || '{QUIET}') s, (values ('FC-1'), ('FC-2')) v(fc)`,
      [SKUS],
    );
    await orders.query(
      `insert into shop.orders (sku_id, fc_id, qty, status) select s, 'FC-1', 1, 'placed' from unnest($1::text[]) s limit 25`,
      [SKUS],
    );
    // FC-3: an FC the traffic never touches, with a load of its own
    await orders.query(`insert into shop.orders (sku_id, fc_id, qty, status) values ('QUIET', 'FC-3', 2, 'placed')`);
    await eventually(storeEqualsRule, 20_000, 'the store to equal the rule');
  }, 60_000);

  afterAll(async () => {
    await captures?.stop();
    await inventory?.end();
    await orders?.end();
    await dropSplitSourceSlots();
    await resetCaptureProgress(f.c.pool);
  });

  it('reports nothing in a correct store under traffic on both sources', async () => {
    const load = traffic();
    try {
      await sleep(300);
      for (let run = 0; run < 3; run++) {
        const clean = await f.acts.verifyAndRepair({ sample: 1000, badgeSkus: 40, settleMs: 10_000 });
        expect(clean.mismatches).toEqual([]);
        expect(clean.checkedSkus).toBe(SKUS.length + 1);
        expect(clean.checkedBadges).toBeGreaterThan(0);
        expect(clean.reemitted).toEqual({ refreshed: 0, deleted: 0 });
      }
    } finally {
      expect(await load.stop()).toBeGreaterThan(10);
    }
  }, 90_000);

  it('finds and repairs stock, a load and a SKU the source does not have, writing nothing into a source', async () => {
    const load = traffic();
    const today = utcDay(new Date());
    try {
      const raw = (await f.c.redis.hget(f.c.keys.sku('QUIET'), 'FC-2'))!;
      await f.c.redis.hset(f.c.keys.sku('QUIET'), 'FC-2', `50|${raw.split('|')[1]}`);
      const quietLifecycle = (await f.c.redis.hget(f.c.keys.sku('QUIET'), LIFECYCLE_FIELD))!;
      await f.c.redis.hset(f.c.keys.sku('GHOST'), LIFECYCLE_FIELD, quietLifecycle);
      await f.c.redis.hincrby(f.c.keys.partitions[0]!.load('FC-3', today), FIELD.loadCount, 7);
      const found = await f.acts.verifyStore({ badgeSkus: 0, settleMs: 10_000 });
      const named = found.mismatches.map((m) => `${m.feature} ${m.key}`).sort();
      expect(named).toContain('available QUIET|FC-2');
      expect(named).toContain('lifecycle GHOST');
      expect(named).toContain(`load FC-3|${today}`);
      // (the sampled verify does not look for SKUs only the store has: the complete one above did)
      await f.c.redis.del(f.c.keys.sku('GHOST'));

      const repaired = await f.acts.verifyAndRepair({ sample: 1000, badgeSkus: 0, settleMs: 10_000 });
      expect(repaired.mismatchCount).toBeGreaterThanOrEqual(2);
      expect(repaired.reemitted.refreshed).toBeGreaterThanOrEqual(1);
      expect(repaired.loadCounters).toBeGreaterThan(0);
    } finally {
      await load.stop();
    }
    await eventually(storeEqualsRule, 20_000, 'the store to equal the rule after the repairs');
    const again = await f.acts.verifyStore({ badgeSkus: 20, settleMs: 10_000 });
    expect(again.mismatches).toEqual([]);
  }, 90_000);

  it("computes the rule's badges across the two databases as the store answers them", async () => {
    const reader = createBadgeReader({
      redis: f.c.redis,
      prefix: f.c.keys.prefix,
      partitions: f.c.keys.partitions.length,
      staleAfterMs: Number.MAX_SAFE_INTEGER,
    });
    const skus = [...SKUS, 'QUIET', 'NOPE'];
    const sql = await sourceBadges({ inventory, orders }, 'R1', skus);
    const store = await reader.getBadges('R1', skus);
    expect(store.badges).toEqual(sql);
    // eligible, out of stock and unknown at least: more than one branch of the rule is compared
    expect(new Set(sql.map((b) => b.reason)).size).toBeGreaterThan(2);
  }, 30_000);
});
