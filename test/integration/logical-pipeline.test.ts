/**
 * The pipeline with capture from the WAL (CAPTURE_MODE=logical) of two source databases beside
 * the pipeline's, on real Temporal: capture workflows (one per source) write the outbox, the drain
 * applies it, the read API answers.
 *  - Under concurrent writers on both sources (transactions over several tables, orders placed,
 *    shipped and cancelled), the store ends equal to the rule over both sources.
 *  - `asOf` never passes a change the store lacks: every fresh answer includes every change
 *    committed before its asOf (probe SKUs flipped and read back).
 *  - An idle source does not make reads stale; a stopped capture does, and reads go fresh again
 *    by themselves once it runs again, with the changes made meanwhile.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, resetState, startDrain } from '../support/env';
import { get } from '../support/http';
import { usePipeline } from '../support/pipeline-fixture';
import { storeEqualsRule } from '../support/two-sources';
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
  withClient,
} from '../support/split-sources';
import { createPool } from '../../db/pool';
import { readCaptureStatus } from '../../capture/capture-status';
import { AUTO_BACKFILL_ID } from '../../workflows';
import type pg from 'pg';

// room for a capture run's continue-as-new (every 5 s here) and a slow tick on a loaded machine
const STALE_AFTER_MS = 3_000;

describe('the pipeline on capture from the WAL of two source databases', () => {
  const f = usePipeline('logical-pipeline', {
    worker: true,
    api: { staleAfterMs: STALE_AFTER_MS },
    config: { ...SPLIT_SOURCE_CONFIG, CAPTURE_TICK_MS: '20' },
  });
  let inventory: pg.Pool;
  let orders: pg.Pool;
  let captures: Awaited<ReturnType<typeof startCaptureWorkflows>> | null = null;
  // runs of 5 s (CHAIN_RUN_MS' least): every case here spans hand-overs between a chain's runs
  const startCaptures = async () => {
    captures = await startCaptureWorkflows(f.temporal.client, f.taskQueue, f.c.pool, undefined, 5_000);
  };
  const stopCaptures = async () => {
    await captures?.stop();
    captures = null;
  };

  beforeAll(async () => {
    await createSplitSources();
    await resetCaptureProgress(f.c.pool);
    await resetState(f.c);
    inventory = createPool(TEST_INVENTORY_URL, 8);
    orders = createPool(TEST_ORDERS_URL, 8);
    await startCaptures();
    await startDrain(f.temporal.client, f.c.config, {
      taskQueue: f.taskQueue,
      workflowId: `drain-logical-${Date.now()}`,
      args: [{ intervalMs: 60_000, idleWaitMs: 200 }],
    });
  }, 60_000);

  afterAll(async () => {
    await stopCaptures();
    await sleep(500);
    await inventory?.end();
    await orders?.end();
    await dropSplitSourceSlots();
    await resetCaptureProgress(f.c.pool);
  });

  const badge = async (sku: string) => (await get(`${f.api.base}/v1/badges/${sku}?region=R1`)).body;

  it('keeps the store equal to the rule over both sources under concurrent writers', async () => {
    await inventory.query(
      `insert into shop.fulfillment_centers values ('FC-1', 'R1', 50, now()), ('FC-2', 'R1', 1000, now())`,
    );
    await inventory.query(`insert into shop.region_fc values ('R1', 'FC-1', 1), ('R1', 'FC-2', 2)`);
    const skus = Array.from({ length: 40 }, (_, i) => `S-${i}`);
    await inventory.query(`insert into shop.skus select unnest($1::text[]), 't', 'active', now()`, [skus]);
    await inventory.query(
      `insert into shop.inventory select s, fc, 20, 0, now() from unnest($1::text[]) s, (values ('FC-1'), ('FC-2')) f(fc)`,
      [skus],
    );
    // Writers on both sources at once: orders placed, shipped and cancelled; stock moving;
    // lifecycles flipping; several tables in one transaction.
    const writers = Array.from({ length: 4 }, (_, w) =>
      (async () => {
        for (let i = 0; i < 60; i++) {
          const sku = skus[(w * 7 + i) % skus.length]!;
          const fc = i % 3 === 0 ? 'FC-2' : 'FC-1';
          await withClient(TEST_ORDERS_URL, async (c) => {
            await c.query(`insert into shop.orders (sku_id, fc_id, qty, status) values ($1, $2, $3, 'placed')`, [
              sku,
              fc,
              1 + (i % 4),
            ]);
            if (i % 5 === 0)
              await c.query(
                `update shop.orders set status = 'shipped' where order_id = (select max(order_id) from shop.orders where sku_id = $1)`,
                [sku],
              );
            if (i % 7 === 0)
              await c.query(
                `update shop.orders set status = 'cancelled' where order_id = (select min(order_id) from shop.orders where sku_id = $1 and status = 'placed')`,
                [sku],
              );
          });
          await withClient(TEST_INVENTORY_URL, async (c) => {
            await c.query('begin');
            await c.query(
              `update shop.inventory set reserved = least(on_hand, reserved + 1) where sku_id = $1 and fc_id = $2`,
              [sku, fc],
            );
            if (i % 11 === 0)
              await c.query(
                `update shop.skus set lifecycle = case lifecycle when 'active' then 'paused' else 'active' end where sku_id = $1`,
                [sku],
              );
            await c.query('commit');
          });
        }
      })(),
    );
    await Promise.all(writers);
    await storeEqualsRule(f.c, { inventory, orders }, 30_000, 'the store to equal the rule over both sources');
    const b = await badge(skus[0]!);
    expect(b.stale).toBe(false);
  }, 120_000);

  it('never answers fresh without a change committed before its asOf', async () => {
    await inventory.query(`insert into shop.skus values ('PROBE', 't', 'paused', now())`);
    await inventory.query(`insert into shop.inventory values ('PROBE', 'FC-2', 5, 0, now())`);
    for (let i = 0; i < 20; i++) {
      const lifecycle = i % 2 === 0 ? 'active' : 'paused';
      await inventory.query(`update shop.skus set lifecycle = $1 where sku_id = 'PROBE'`, [lifecycle]);
      const committedAt = Date.now();
      // Read until an answer claims to be fresh as of after the commit: it must show the commit.
      const answer = await eventually(
        async () => {
          const b = await badge('PROBE');
          return !b.stale && Date.parse(b.asOf) >= committedAt ? b : undefined;
        },
        10_000,
        'a fresh answer as of after the commit',
      );
      expect(answer.reason).toBe(lifecycle === 'active' ? 'eligible' : 'paused');
    }
  }, 120_000);

  it('a capture chain continues as new with the lease it holds, and its continued runs capture', async () => {
    for (const handle of captures!.handles) {
      // the run current now, once the chain has continued as new (runs of 5 s)
      const events = await eventually(
        async () => {
          const { events: e } = await handle.fetchHistory();
          const continued = !!e?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId;
          // (a run that has just begun may not have scheduled its first activity yet)
          return continued && e!.some((x) => x.activityTaskScheduledEventAttributes) ? e! : null;
        },
        15_000,
        `a continued run of ${handle.workflowId}`,
      );
      const activities = events.flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
      expect(activities).not.toContain('acquireCaptureLease');
      expect(activities[0]).toBe('captureSource');
    }
    // and a change made now arrives through them
    await inventory.query(`update shop.skus set lifecycle = 'active' where sku_id = 'PROBE'`);
    const committedAt = Date.now();
    await eventually(
      async () => {
        const b = await badge('PROBE');
        return !b.stale && Date.parse(b.asOf) >= committedAt && b.reason === 'eligible' ? b : undefined;
      },
      10_000,
      'the change, through the continued runs',
    );
  });

  it('an idle source keeps reads fresh; a stopped capture makes them stale until it runs again', async () => {
    await sleep(STALE_AFTER_MS * 2); // no writes anywhere: the ticks carry asOf forward
    expect((await badge('PROBE')).stale).toBe(false);

    await stopCaptures();
    await inventory.query(`update shop.skus set lifecycle = 'discontinued' where sku_id = 'PROBE'`);
    await eventually(async () => (await badge('PROBE')).stale, 10_000, 'reads to go stale with capture stopped');
    const stale = await badge('PROBE');
    expect(stale.reason).not.toBe('discontinued'); // the change is not in: and the answer says stale

    await startCaptures(); // resumes from each slot's confirmed position
    const fresh = await eventually(
      async () => {
        const b = await badge('PROBE');
        return !b.stale ? b : undefined;
      },
      15_000,
      'reads fresh again',
    );
    expect(fresh.reason).toBe('discontinued');
    // what ops status and the metrics report for each source
    const status = await readCaptureStatus(f.c.config, f.c.pool);
    expect(status.map((s) => s.source).sort()).toEqual(['inventory', 'orders']);
    for (const s of status) {
      expect(s.slotState).toMatchObject({
        exists: true,
        active: true,
        walStatus: 'reserved',
        invalidationReason: null,
      });
      expect(s.slotState!.retainedBytes).toBeGreaterThanOrEqual(0);
      expect(Date.now() - s.coveredAtMs!).toBeLessThan(STALE_AFTER_MS);
      expect(s.lostAtMs).toBeNull();
    }
  }, 60_000);

  it('a dropped slot is created again; no answer is fresh without the changes in between until the refill brings them', async () => {
    const backfillsBefore = (await f.temporal.client.workflow.count(`WorkflowId = '${AUTO_BACKFILL_ID}'`)).count;
    await stopCaptures();
    const slot = splitSources().find((s) => s.name === 'inventory')!.slot;
    // as a database team would: end the walsender (the session lingers a moment), drop the slot
    await dropSlotUnderCapture(TEST_INVENTORY_URL, slot);
    await inventory.query(`update shop.skus set lifecycle = 'active' where sku_id = 'PROBE'`); // lost with the slot
    const lostChangeAt = Date.now();
    await startCaptures();
    // The capture finds its slot lost, marks the source (reads of it stale) and starts a refill.
    // Until the refill is in, no answer claims to be fresh as of after the lost change without it.
    const falseFresh: unknown[] = [];
    await eventually(
      async () => {
        const b = await badge('PROBE');
        if (b.stale || Date.parse(b.asOf) < lostChangeAt) return null;
        if (b.reason !== 'eligible') falseFresh.push(b); // fresh as of after the change, without it
        return b.reason === 'eligible';
      },
      30_000,
      'a fresh answer with the lost change',
    );
    expect(falseFresh).toEqual([]);
    expect((await f.temporal.client.workflow.count(`WorkflowId = '${AUTO_BACKFILL_ID}'`)).count).toBeGreaterThan(
      backfillsBefore,
    );
    const status = (await readCaptureStatus(f.c.config, f.c.pool)).find((s) => s.source === 'inventory')!;
    expect(status.lostAtMs).toBeNull(); // cleared by the refill
  }, 60_000);
});
