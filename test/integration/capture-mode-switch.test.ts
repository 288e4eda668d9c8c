/**
 * Handing a live source over between the trigger capture and capture from the WAL
 * (capture/mode-switch.ts), with the drain running and order traffic on the source: trigger →
 * logical → trigger, and neither a lost change nor one applied twice: the store ends equal to the
 * rule (a load delta applied twice, or lost, would show), and no trigger is left behind on the way.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { switchToLogical, switchToTrigger, captureTriggersSql } from '../../capture/mode-switch';
import { tablesWithCaptureTriggers } from '../../capture/capture-triggers';
import { dropSlot, ensureSlot } from '../../capture/slot';
import { captureSources } from '../../capture/sources';
import { SOURCE_TABLES } from '../../capture/source-tables';
import { compareSnapshots } from '../../reconcile/compare';
import { sourceFeatures } from '../../reconcile/source-features';
import { storeFeatures } from '../../reconcile/store-features';
import { seedCatalogue, type CatalogueSize } from '../../simulator/catalogue';
import { runTraffic } from '../../simulator/traffic';
import { captureWorkflow, stopCaptureSignal } from '../../workflows';
import { eventually, resetState, startDrain } from '../support/env';
import { usePipeline } from '../support/pipeline-fixture';
import { ensurePublication, prepareCapture } from '../../scripts/lib/capture-mode';
import { captureScheduleOptions } from '../../scripts/lib/schedules';
import { CaptureSession, runCapture } from '../../capture/capture-loop';
import { encodeSwitch, TICK_PREFIX } from '../../capture/ticks';
import { SlotBusyError } from '../../capture/replication-stream';
import { readCaptureProgress, releaseCaptureSource } from '../../outbox/capture-progress';

const size: CatalogueSize = { skus: 200, fcs: 4, regions: 2, fcsPerRegion: 2, fcsPerSku: 2 };
const TABLES = Object.keys(SOURCE_TABLES);

describe('capture mode hand-over on a live source', () => {
  const f = usePipeline('capture-switch', { worker: true, config: { CAPTURE_TICK_MS: '20' } });
  const [shop] = captureSources(f.c.config);

  afterAll(async () => {
    // Whatever happened, the next file finds the trigger capture in place and no slot.
    await f.c.pool.query(captureTriggersSql(TABLES));
    await dropSlot(f.c.pool, shop!.slot).catch(() => {});
    await f.c.pool.query(`delete from pipeline.capture_progress where source = $1`, [shop!.name]);
  });

  /** A seeded catalogue handed over to the WAL, captured up to the hand-over's marker and past it. */
  async function capturedFromTheWal(): Promise<void> {
    await resetState(f.c);
    await ensurePublication(shop!);
    await seedCatalogue(f.c.pool, size);
    expect(await switchToLogical(shop!, f.c.pool)).toBe(true);
    await eventually(
      async () => {
        await runCapture({ source: shop!, pipeline: f.c.pool, tickMs: 20, budgetMs: 500 });
        return (await readCaptureProgress(f.c.pool, shop!.name))?.switchId === null;
      },
      30_000,
      'the capture to pass the hand-over marker',
    );
  }

  it('trigger → logical → trigger under traffic: nothing lost, nothing twice', async () => {
    await resetState(f.c);
    await ensurePublication(shop!); // as npm start does (sql/source-setup.sql)
    await seedCatalogue(f.c.pool, size);
    await startDrain(f.temporal.client, f.c.config, {
      taskQueue: f.taskQueue,
      workflowId: `drain-switch-${Date.now()}`,
      args: [{ intervalMs: 60_000, idleWaitMs: 200 }],
    });
    const traffic = runTraffic(f.c.pool, { rate: 300, durationMs: 6_000, connections: 4, seed: 7, size });

    await sleep(1_000);
    expect(await switchToLogical(shop!, f.c.pool)).toBe(true);
    expect(await tablesWithCaptureTriggers(f.c.pool, TABLES)).toEqual([]);
    const capture = await f.temporal.client.workflow.start(captureWorkflow, {
      taskQueue: f.taskQueue,
      workflowId: `capture-switch-${Date.now()}`,
      args: [{ source: shop!.name, intervalMs: 60_000, activityBudgetMs: 1_000 }],
    });
    await sleep(2_500);
    await capture.signal(stopCaptureSignal);
    expect((await capture.result()).outcome).toBe('stopped');
    await switchToTrigger(shop!, f.c.pool);
    expect(await tablesWithCaptureTriggers(f.c.pool, TABLES)).toEqual([...TABLES].sort());

    const stats = await traffic;
    expect(stats.changes).toBeGreaterThan(500);
    await eventually(
      async () => {
        const diff = compareSnapshots(await sourceFeatures(f.c.pool), await storeFeatures(f.c.redis, f.c.keys));
        if (diff.length) throw new Error(`${diff.length} differences, e.g. ${JSON.stringify(diff.slice(0, 3))}`);
        return true;
      },
      30_000,
      'the store to equal the rule',
    );
    // the slot is gone and the source forgotten
    expect(
      (await f.c.pool.query(`select 1 from pg_replication_slots where slot_name = $1`, [shop!.slot])).rowCount,
    ).toBe(0);
  }, 90_000);

  it('a hand-back cut short after its triggers were created is finished without a capture, and no capture starts beside the triggers: nothing written twice', async () => {
    await capturedFromTheWal();
    // A session whose stream reaches a hand-back marker is done: a chain's next run opens another
    const session = await CaptureSession.open(shop!, f.c.pool);
    try {
      await f.c.pool.query(`select pg_logical_emit_message(true, $1, $2)`, [
        TICK_PREFIX,
        encodeSwitch('a-hand-back', 'trigger', shop!.slot),
      ]);
      expect((await session.run({ tickMs: 20, budgetMs: 5_000 })).handedBack).toBe(true);
      expect(session.healthy).toBe(false);
    } finally {
      await session.close();
    }
    // A hand-back that committed its triggers (with the capture written up to its marker) and
    // stopped there: a crash, or the slot's drop failing. The triggers write what follows.
    await f.c.pool.query(captureTriggersSql(TABLES));
    await releaseCaptureSource(f.c.pool, shop!.name);
    const [{ sku_id: sku, fc_id: fc }] = (await f.c.pool.query(`select sku_id, fc_id from shop.inventory limit 1`))
      .rows;
    const orders = (
      await f.c.pool.query<{ order_id: string }>(
        `insert into shop.orders (sku_id, fc_id, qty, status) select $1, $2, 1, 'placed' from generate_series(1, 10) returning order_id::text`,
        [sku, fc],
      )
    ).rows.map((r) => r.order_id);
    const written = async () =>
      (
        await f.c.pool.query<{ key: string; n: number }>(
          `select key, count(*)::int as n from pipeline.outbox where tbl = 'orders' and key = any($1) group by key`,
          [orders],
        )
      ).rows;
    expect((await written()).map((r) => r.n)).toEqual(orders.map(() => 1)); // the triggers' rows

    // a capture chain still running on a worker of CAPTURE_MODE=logical: refused, writes nothing
    await expect(runCapture({ source: shop!, pipeline: f.c.pool, tickMs: 20, budgetMs: 500 })).rejects.toThrow(
      /carry the capture triggers, which write its changes into this outbox \(CAPTURE_MODE=trigger\)/,
    );
    // npm start again (CAPTURE_MODE=trigger): the hand-back finishes without capturing
    await switchToTrigger(shop!, f.c.pool);
    expect((await written()).map((r) => r.n)).toEqual(orders.map(() => 1));
    expect(await readCaptureProgress(f.c.pool, shop!.name)).toBeNull();
    expect(
      (await f.c.pool.query(`select 1 from pg_replication_slots where slot_name = $1`, [shop!.slot])).rowCount,
    ).toBe(0);
  }, 90_000);

  it('a capture session that takes the source while the hand-back commits its triggers waits for them, finds them and stops', async () => {
    await capturedFromTheWal();
    // A capture chain the hand-back could not stop (a worker of CAPTURE_MODE=logical) opens a
    // session between the fence and the triggers' commit: it passed its first trigger check (none
    // committed yet) and takes the source (its stream waits for the hand-back's own to let go).
    const racer = async (): Promise<unknown> => {
      for (;;) {
        try {
          return await runCapture({ source: shop!, pipeline: f.c.pool, tickMs: 20, budgetMs: 3_000 });
        } catch (err) {
          if (!(err instanceof SlotBusyError)) throw err;
          await sleep(50);
        }
      }
    };
    let raced: Promise<unknown> | undefined;
    const claimWaits = async () =>
      (
        await f.c.pool.query(
          `select 1 from pg_stat_activity
            where datname = current_database() and wait_event_type = 'Lock' and query like 'update pipeline.capture_progress%generation = generation + 1, confirms_recorded_by%'`,
        )
      ).rowCount! > 0;
    await switchToTrigger(shop!, f.c.pool, {
      beforeTriggersCommit: async () => {
        raced = racer();
        raced.catch(() => {}); // awaited below
        // its claim waits for the triggers' commit (without the hand-back's hold on the source's
        // row it would not wait, and would stream beside the triggers: the assertion below fails)
        for (let i = 0; i < 100 && !(await claimWaits()); i++) await sleep(50);
      },
    });
    await expect(raced).rejects.toThrow(/carry the capture triggers, which write its changes into this outbox/);
    expect(await tablesWithCaptureTriggers(f.c.pool, TABLES)).toEqual(TABLES.slice().sort());
    // the triggers write each change once, and nothing captures beside them
    const [{ sku_id: sku, fc_id: fc }] = (await f.c.pool.query(`select sku_id, fc_id from shop.inventory limit 1`))
      .rows;
    const order = (
      await f.c.pool.query<{ order_id: string }>(
        `insert into shop.orders (sku_id, fc_id, qty, status) values ($1, $2, 1, 'placed') returning order_id::text`,
        [sku, fc],
      )
    ).rows[0]!.order_id;
    await sleep(500);
    expect(
      (await f.c.pool.query(`select 1 from pipeline.outbox where tbl = 'orders' and key = $1`, [order])).rowCount,
    ).toBe(1);
    expect(await readCaptureProgress(f.c.pool, shop!.name)).toBeNull();
  }, 90_000);

  it('npm start with CAPTURE_MODE=trigger drops a slot a hand-over to the WAL left without registering its source', async () => {
    await resetState(f.c);
    await f.c.pool.query(`delete from pipeline.capture_progress`);
    await ensureSlot(f.c.pool, shop!.slot);
    await prepareCapture({ ...f.c.config, CAPTURE_MODE: 'trigger' }, f.temporal.client, () => {});
    expect(
      (await f.c.pool.query(`select 1 from pg_replication_slots where slot_name = $1`, [shop!.slot])).rowCount,
    ).toBe(0);
  });

  it('npm start with CAPTURE_MODE=trigger deletes the capture schedule as it stops the capture and hands back', async () => {
    await resetState(f.c);
    await ensurePublication(shop!);
    await seedCatalogue(f.c.pool, size);
    expect(await switchToLogical(shop!, f.c.pool)).toBe(true);
    // the schedule a CAPTURE_MODE=logical npm start created, its chain running
    const schedule = await f.temporal.client.schedule.create(
      captureScheduleOptions({ ...f.c.config, CAPTURE_MODE: 'logical' }, shop!.name),
    );
    try {
      await schedule.trigger();
      await eventually(
        async () => (await readCaptureProgress(f.c.pool, shop!.name))?.switchId === null,
        30_000,
        "the schedule's capture to pass the hand-over marker",
      );
      await prepareCapture({ ...f.c.config, CAPTURE_MODE: 'trigger' }, f.temporal.client, () => {});
      await expect(schedule.describe()).rejects.toThrow(/not found/i);
      expect(await tablesWithCaptureTriggers(f.c.pool, TABLES)).toEqual([...TABLES].sort());
      expect(await readCaptureProgress(f.c.pool, shop!.name)).toBeNull();
    } finally {
      await schedule.delete().catch(() => {});
    }
  }, 90_000);
});
