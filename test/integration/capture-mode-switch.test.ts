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
import { dropSlot } from '../../capture/slot';
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
import { ensurePublication } from '../../scripts/lib/capture-mode';

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
});
