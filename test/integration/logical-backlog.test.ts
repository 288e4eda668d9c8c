/**
 * A 1,000,000-change backlog in a replication slot (issue 23, point 8): capture stopped, a million
 * stock changes committed on the inventory source in ten transactions of 100,000 rows each (large
 * transactions on purpose: pgoutput sends each whole at its commit), then capture started again.
 * It resumes from the slot's confirmed position and writes every change exactly once: the outbox
 * holds exactly the million rows, in commit order per row, and the store ends equal to the rule.
 * The catch-up rate is printed (the benchmark measures it: `npm run bench:e2e-logical`).
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../../db/pool';
import { eventually, resetState, startDrain } from '../support/env';
import { usePipeline } from '../support/pipeline-fixture';
import { storeEqualsRule } from '../support/two-sources';
import {
  createSplitSources,
  dropSplitSourceSlots,
  resetCaptureProgress,
  SPLIT_SOURCE_CONFIG,
  startCaptureWorkflows,
  TEST_INVENTORY_URL,
  TEST_ORDERS_URL,
} from '../support/split-sources';

const SKUS = 50_000;
const FCS = ['FC-1', 'FC-2'];
const ROUNDS = 10; // × SKUS × FCS = 1,000,000 changes

describe('a 1,000,000-change slot backlog', () => {
  const f = usePipeline('logical-backlog', { worker: true, config: { ...SPLIT_SOURCE_CONFIG, CAPTURE_TICK_MS: '50' } });
  let inventory: pg.Pool;
  let orders: pg.Pool;
  let captures: { stop(): Promise<void> } | null = null;
  const outboxRows = async () =>
    Number((await f.c.pool.query(`select count(*) as n from pipeline.outbox where tbl = 'inventory'`)).rows[0].n);

  beforeAll(async () => {
    await createSplitSources();
    await resetCaptureProgress(f.c.pool);
    await resetState(f.c);
    inventory = createPool(TEST_INVENTORY_URL, 4);
    orders = createPool(TEST_ORDERS_URL, 2);
    captures = await startCaptureWorkflows(f.temporal.client, f.taskQueue, f.c.pool);
    await startDrain(f.temporal.client, f.c.config, {
      taskQueue: f.taskQueue,
      workflowId: `drain-backlog-${Date.now()}`,
      args: [{ intervalMs: 60_000, idleWaitMs: 200 }],
    });
    await inventory.query(
      `insert into shop.fulfillment_centers values ('FC-1', 'R1', 1000, now()), ('FC-2', 'R1', 1000, now())`,
    );
    await inventory.query(`insert into shop.region_fc values ('R1', 'FC-1', 1), ('R1', 'FC-2', 2)`);
    await inventory.query(
      `insert into shop.skus select 'S-' || g, 't', 'active', now() from generate_series(1, ${SKUS}) g`,
    );
    await inventory.query(
      `insert into shop.inventory select 'S-' || g, fc, 0, 0, now() from generate_series(1, ${SKUS}) g, unnest($1::text[]) fc`,
      [FCS],
    );
  }, 120_000);

  afterAll(async () => {
    await captures?.stop().catch(() => {});
    await inventory?.end();
    await orders?.end();
    await dropSplitSourceSlots();
    await resetCaptureProgress(f.c.pool);
  });

  it('is caught up after capture resumes: every change once, the store equal to the rule', async () => {
    await eventually(async () => (await outboxRows()) === SKUS * FCS.length, 60_000, 'the catalogue captured');
    await captures!.stop();
    captures = null;
    const before = await outboxRows();

    // Each round sets on_hand to the round number: the last one (ROUNDS) must win everywhere.
    for (let round = 1; round <= ROUNDS; round++)
      await inventory.query(`update shop.inventory set on_hand = $1, updated_at = now()`, [round]);
    const backlog = SKUS * FCS.length * ROUNDS;

    const started = Date.now();
    captures = await startCaptureWorkflows(f.temporal.client, f.taskQueue, f.c.pool);
    await eventually(async () => (await outboxRows()) - before >= backlog, 300_000, 'the backlog in the outbox');
    const captured = Date.now();
    await storeEqualsRule(f.c, { inventory, orders }, 300_000, 'the store to equal the rule');
    const applied = Date.now();
    console.log(
      `1,000,000-change slot backlog: into the outbox in ${captured - started} ms (${Math.round((backlog * 1000) / (captured - started))} changes/s), ` +
        `in the store in ${applied - started} ms (${Math.round((backlog * 1000) / (applied - started))} changes/s end to end, including this test's comparison)`,
    );
    // exactly once: no change missing, none written twice (a replay from an older position would add rows)
    expect((await outboxRows()) - before).toBe(backlog);
    // per row, outbox ids follow the order of its changes: the last image of every row is the last round
    const lastImages = await f.c.pool.query(
      `select count(*)::int as n from (
         select distinct on (key) key, (image ->> 'on_hand')::int as on_hand from pipeline.outbox
          where tbl = 'inventory' order by key, id desc) x
        where on_hand <> $1`,
      [ROUNDS],
    );
    expect(lastImages.rows[0].n).toBe(0);
  }, 600_000);
});
