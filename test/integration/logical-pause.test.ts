/**
 * `ops pause` while a capture run's session is opening behind a transaction held open on its source
 * (creating the slot waits for it, for as long as it stays open): the pause ends that run within
 * its wait and exits 0, leaving no slot half made and nothing recorded against the source; once the
 * transaction has ended, `ops resume` captures both sources, the changes made while paused included.
 * (The open itself: logical-open-abort.test.ts.)
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureSlot, readSlot } from '../../capture/slot';
import { ALL_SCHEDULE_IDS, captureScheduleIds, drainScheduleIds, ensureSchedules } from '../../scripts/lib/schedules';
import { deleteSchedules, eventually, resetState } from '../support/env';
import { runOps } from '../support/ops-cli';
import { usePipeline } from '../support/pipeline-fixture';
import {
  createSplitSources,
  dropSplitSourceSlots,
  resetCaptureProgress,
  splitSources,
  SPLIT_SOURCE_CONFIG,
  TEST_INVENTORY_URL,
  TEST_ORDERS_URL,
  withClient,
} from '../support/split-sources';

const inventory = splitSources().find((s) => s.name === 'inventory')!;
const orders = splitSources().find((s) => s.name === 'orders')!;

/** What the pipeline database records of a source's capture. */
const progressOf = async (pipeline: pg.Pool, source: string) =>
  (
    await pipeline.query(`select lsn::text, covered_at, lost_at from pipeline.capture_progress where source = $1`, [
      source,
    ])
  ).rows[0];
/** Whether the outbox holds a change of this row. */
const inOutbox = async (pipeline: pg.Pool, tbl: string, key: string) =>
  (await pipeline.query(`select 1 from pipeline.outbox where tbl = $1 and key = $2`, [tbl, key])).rowCount === 1;
/** Whether a session is creating the inventory slot (waiting for the transactions running). */
const creatingSlot = () =>
  withClient(TEST_INVENTORY_URL, async (c) => {
    const r = await c.query(
      `select 1 from pg_stat_activity where datname = current_database() and query like '%pg_create_logical_replication_slot%' and pid <> pg_backend_pid()`,
    );
    return (r.rowCount ?? 0) > 0;
  });

describe('ops pause while a capture session opens behind a transaction held open on its source', () => {
  const f = usePipeline('logical-pause', {
    worker: true,
    config: { ...SPLIT_SOURCE_CONFIG, CAPTURE_TICK_MS: '20', DRAIN_LEASE_TTL_MS: '2000' },
  });
  const ops = (...args: string[]) => runOps(f.c.config, f.address, args);
  let held: pg.Client;
  const progress = (source: string) => progressOf(f.c.pool, source);

  beforeAll(async () => {
    await createSplitSources();
    await resetCaptureProgress(f.c.pool);
    await resetState(f.c);
    await ensureSchedules(f.temporal.client, f.c.config, f.c.config.DRAIN_SHARDS);
    expect((await ops('pause')).code).toBe(0); // nothing runs until the test resumes
    await dropSplitSourceSlots(); // a slot an earlier file left would leave nothing to create
    // again, now that nothing runs: a capture the new schedules started before the pause recorded
    // a position, and its slot (dropped just now) would be found lost at the resume
    await resetCaptureProgress(f.c.pool);
  }, 60_000);

  /** What the capture was doing, for a failure's message. */
  const captureState = async () =>
    JSON.stringify({
      slots: (await f.c.pool.query(`select slot_name, database, active from pg_replication_slots`)).rows,
      leases: (await f.c.pool.query(`select name, owner, expires_at from pipeline.leases`)).rows,
      inventory: await progress('inventory'),
      running: await (async () => {
        const runs: string[] = [];
        for await (const wf of f.temporal.client.workflow.list({
          query: `WorkflowType = 'captureWorkflow' AND ExecutionStatus = 'Running'`,
        })) {
          const d = await f.temporal.client.workflow.getHandle(wf.workflowId).describe();
          runs.push(
            `${wf.workflowId} on ${wf.taskQueue}: ${JSON.stringify(d.raw.pendingActivities?.map((a) => a.lastFailure?.message))}`,
          );
        }
        return runs;
      })(),
    });

  afterAll(async () => {
    await held?.end().catch(() => undefined);
    await ops('pause');
    await deleteSchedules(f.temporal?.client, [
      ...ALL_SCHEDULE_IDS,
      ...drainScheduleIds(f.c.config.DRAIN_SHARDS),
      ...captureScheduleIds(f.c.config),
    ]);
    await dropSplitSourceSlots();
    await resetCaptureProgress(f.c.pool);
  });

  it('ends the run waiting to create the slot and exits 0; resume then captures with nothing lost', async () => {
    // Creating a slot waits for the transactions of every database on the server: the orders slot
    // is made first, so only the inventory capture waits.
    await withClient(TEST_ORDERS_URL, (c) => ensureSlot(c, orders.slot));
    held = new pg.Client({ connectionString: TEST_INVENTORY_URL });
    await held.connect();
    await held.query('begin');
    await held.query(`insert into shop.fulfillment_centers values ('HELD', 'R1', 1, now())`); // takes a transaction id

    expect((await readSlot(held, inventory.slot)).exists).toBe(false);
    expect((await ops('resume')).code).toBe(0);
    await eventually(async () => (await progress('orders'))?.covered_at, 30_000, 'the orders capture streaming');
    await eventually(creatingSlot, 30_000, 'the inventory capture waiting to create its slot').catch(async (err) => {
      throw new Error(`${(err as Error).message}; capture state: ${await captureState()}`);
    });

    const pausedAt = Date.now();
    const paused = await ops('pause', '--wait', '20');
    expect(paused.stderr).toBe('');
    expect(paused.code).toBe(0);
    expect(paused.stdout).toMatch(/^capture and drain paused; stopped /);
    expect(Date.now() - pausedAt).toBeLessThan(20_000);
    expect((await readSlot(held, inventory.slot)).exists).toBe(false);
    expect(await creatingSlot()).toBe(false);
    expect(await progress('inventory')).toMatchObject({ lsn: '0/0', covered_at: null, lost_at: null });

    // while paused: a change waits in the orders slot
    await withClient(TEST_ORDERS_URL, (c) =>
      c.query(`insert into shop.orders values (9001, 'S1', 'F1', 1, 'placed', now())`),
    );
    await held.query('commit');

    expect((await ops('resume')).code).toBe(0);
    await eventually(() => inOutbox(f.c.pool, 'orders', '9001'), 30_000, 'the change made while paused captured');
    await eventually(async () => (await progress('inventory'))?.covered_at, 30_000, 'the inventory capture streaming');
    await withClient(TEST_INVENTORY_URL, (c) =>
      c.query(`insert into shop.skus values ('AFTER', 't', 'active', now())`),
    );
    await eventually(() => inOutbox(f.c.pool, 'skus', 'AFTER'), 30_000, 'a change after the resume captured');
    expect(await progress('inventory')).toMatchObject({ lost_at: null });
    expect(await progress('orders')).toMatchObject({ lost_at: null });
  }, 120_000);
});
