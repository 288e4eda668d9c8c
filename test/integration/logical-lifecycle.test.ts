/**
 * A SKU's lifecycle with capture from the WAL of separate source databases (CAPTURE_MODE=logical):
 * reactivated after its tombstone expired, it is rebuilt by re-reading its rows between watermarks
 * in the inventory database's WAL (capture/watermark-read.ts), with nothing written into the source.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../../db/pool';
import { skuRebuildWorkflowId } from '../../workflows';
import { eventually, resetState, startDrain } from '../support/env';
import { get } from '../support/http';
import { usePipeline } from '../support/pipeline-fixture';
import {
  createSplitSources,
  dropSplitSourceSlots,
  resetCaptureProgress,
  SPLIT_SOURCE_CONFIG,
  startCaptureWorkflows,
  TEST_INVENTORY_URL,
} from '../support/split-sources';

const TTL_S = 2;

describe('SKU lifecycle on capture from the WAL', () => {
  const f = usePipeline('logical-lifecycle', {
    worker: true,
    api: {},
    config: { ...SPLIT_SOURCE_CONFIG, CAPTURE_TICK_MS: '20', TOMBSTONE_TTL_S: String(TTL_S) },
  });
  let inventory: pg.Pool;
  let captures: { stop(): Promise<void> };

  beforeAll(async () => {
    // a rebuild of S1 left running by an earlier file (its worker gone) would keep this file's
    // drain from starting its own: one id for every run
    await f.temporal.client.workflow
      .getHandle(skuRebuildWorkflowId('S1'))
      .terminate('an earlier file left it')
      .catch(() => undefined);
    await createSplitSources();
    await resetCaptureProgress(f.c.pool);
    await resetState(f.c);
    inventory = createPool(TEST_INVENTORY_URL, 4);
    captures = await startCaptureWorkflows(f.temporal.client, f.taskQueue, f.c.pool);
    await startDrain(f.temporal.client, f.c.config, {
      taskQueue: f.taskQueue,
      workflowId: `drain-logical-lifecycle-${Date.now()}`,
      args: [{ intervalMs: 60_000, idleWaitMs: 200 }],
    });
  }, 60_000);

  afterAll(async () => {
    await captures?.stop();
    await inventory?.end();
    await dropSplitSourceSlots();
    await resetCaptureProgress(f.c.pool);
  });

  const q = (sql: string) => inventory.query(sql);
  const until = (want: Record<string, unknown>, what: string, ms = 10_000) =>
    eventually(
      async () => {
        const b = (await get(`${f.api.base}/v1/badges/S1?region=R1`)).body;
        return Object.entries(want).every(([k, v]) => b[k] === v) ? b : null;
      },
      ms,
      what,
    );

  it('reactivated after the tombstone expired: rebuilt from the source through watermarks', async () => {
    await q(`insert into shop.fulfillment_centers values ('F1', 'R1', 100, now()), ('F2', 'R1', 100, now())`);
    await q(`insert into shop.region_fc values ('R1', 'F1', 1), ('R1', 'F2', 2)`);
    await q(`insert into shop.skus values ('S1', 's', 'active', now())`);
    await q(`insert into shop.inventory values ('S1', 'F1', 5, 0, now()), ('S1', 'F2', 5, 0, now())`);
    await until({ reason: 'eligible', fc: 'F1' }, 'initial state');
    await q(`update shop.skus set lifecycle = 'discontinued' where sku_id = 'S1'`);
    await until({ reason: 'discontinued' }, 'discontinued');
    await until({ reason: 'unknown' }, 'tombstone expiry', (TTL_S + 5) * 1000);
    await q(`update shop.inventory set on_hand = 0 where sku_id = 'S1' and fc_id = 'F1'`);
    await q(`update shop.inventory set on_hand = 9, reserved = 2 where sku_id = 'S1' and fc_id = 'F2'`);
    await eventually(async () => (await f.c.redis.exists(f.c.keys.sku('S1'))) === 1, 10_000, 'orphan keys');
    await f.c.redis.del(f.c.keys.sku('S1')); // as if they had expired too: only the rebuild restores the stock
    await q(`update shop.skus set lifecycle = 'active' where sku_id = 'S1'`);
    await until({ reason: 'eligible', fc: 'F2' }, 'rebuilt and eligible');
    const rebuild = f.temporal.client.workflow.getHandle(skuRebuildWorkflowId('S1'));
    expect(await rebuild.result()).toEqual({ rows: 3 }); // the skus row and two inventory rows
  }, 60_000);
});
