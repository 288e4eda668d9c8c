/**
 * A capture session opening on a source with no slot waits, creating it, for every transaction
 * running there: behind one held open, for as long as it stays open. `ops pause` (a cancelled
 * capture activity) and a worker's shutdown must end that wait at once (capture/capture-loop.ts,
 * CaptureSession.open; db/cancellable.ts):
 *  - the creation is cancelled on the source: no slot is left, half made or whole;
 *  - every connection the open made to the source is closed;
 *  - the pipeline database records nothing (no loss, no position, no new generation), and the
 *    error is the signal's reason (the activity ends cancelled, not failed);
 *  - once the transaction has ended, the next open creates the slot and captures.
 * A worker shutting down ends the open too; its activity fails, retryable (another worker goes on).
 */
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createCaptureActivities } from '../../activities/capture';
import { CaptureSession, runCapture } from '../../capture/capture-loop';
import { closeCaptureSessions } from '../../capture/session-registry';
import { dropSlot, readSlot } from '../../capture/slot';
import { loadConfig } from '../../config';
import { createPool } from '../../db/pool';
import { truncateEverything } from '../../db/truncate';
import { readCaptureProgress } from '../../outbox/capture-progress';
import { eventually, TEST_DATABASE_URL } from '../support/env';
import {
  createSplitSources,
  dropSplitSourceSlots,
  resetCaptureProgress,
  splitSources,
  SPLIT_SOURCE_CONFIG,
  TEST_INVENTORY_URL,
  withClient,
} from '../support/split-sources';

const inventory = splitSources().find((s) => s.name === 'inventory')!;

/** The pipeline's sessions on the inventory database (capture, its ticks, a cancel). */
async function captureBackends(): Promise<{ application_name: string; query: string }[]> {
  return withClient(TEST_INVENTORY_URL, async (c) => {
    const r = await c.query(
      `select application_name, query from pg_stat_activity
        where datname = current_database() and application_name like 'fresh-badges-%'`,
    );
    return r.rows;
  });
}

/** Whether a session is creating the inventory slot (waiting for the transactions running). */
const creatingSlot = async () =>
  (await captureBackends()).some((b) => b.query.includes('pg_create_logical_replication_slot'));

/** What the pipeline database records of the source that an open could change. */
async function recorded(pipeline: pg.Pool) {
  const r = await pipeline.query(
    `select lsn::text, covered_at, lost_at, generation, confirms_recorded_by, switch_id
       from pipeline.capture_progress where source = 'inventory'`,
  );
  return r.rows[0] ?? null;
}

/** Captures until a tick taken after now is written (a session of its own); returns what the run reported. */
async function captureUntilCovered(pipeline: pg.Pool) {
  const since = Date.now();
  const stop = new AbortController();
  return runCapture({
    source: inventory,
    pipeline,
    tickMs: 20,
    budgetMs: 10_000,
    signal: stop.signal,
    onProgress: (q) => {
      if (q.coveredAtMs !== null && q.coveredAtMs > since) stop.abort();
    },
  });
}

let pipeline: pg.Pool;
/** A transaction held open on the inventory database, a row written (it has a transaction id). */
let held: pg.Client;

beforeAll(async () => {
  pipeline = createPool(TEST_DATABASE_URL);
  await createSplitSources();
}, 60_000);

beforeEach(async () => {
  // an unused pipeline: a source joining one used before is marked lost (outbox/capture-layout.ts)
  await truncateEverything(pipeline);
  await resetCaptureProgress(pipeline);
  await withClient(TEST_INVENTORY_URL, (c) => dropSlot(c, inventory.slot));
  held = new pg.Client({ connectionString: TEST_INVENTORY_URL });
  await held.connect();
  await held.query('begin');
  await held.query(`insert into shop.fulfillment_centers values ('HELD-${Date.now()}', 'R1', 1, now())`); // takes a transaction id
});

afterEach(async () => {
  await held.end().catch(() => undefined);
});

afterAll(async () => {
  await closeCaptureSessions();
  // the activities' lease (a workflow releases it; here none does): a later file's capture would find it held
  await pipeline.query(`delete from pipeline.leases where owner = 'open-abort-test'`);
  await dropSplitSourceSlots();
  await resetCaptureProgress(pipeline);
  await pipeline.end();
});

describe('a capture session opening behind a transaction held open on the source', () => {
  it('ends at an abort: the creation cancelled, no slot, no connection, nothing recorded; then opens as usual', async () => {
    const abort = new AbortController();
    const opening = CaptureSession.open(inventory, pipeline, abort.signal);
    const settled = opening.then(
      () => 'opened',
      () => 'failed',
    );
    await eventually(creatingSlot, 10_000, 'the open waiting to create the slot');
    await sleep(500);
    expect(await Promise.race([settled, 'waiting'])).toBe('waiting');
    const before = await recorded(pipeline);
    expect(before).toMatchObject({ lsn: '0/0', lost_at: null });

    const reason = new Error('paused (test)');
    const abortedAt = Date.now();
    abort.abort(reason);
    await expect(Promise.race([opening, sleep(5_000).then(() => 'still waiting')])).rejects.toBe(reason);
    expect(Date.now() - abortedAt).toBeLessThan(3_000);

    expect((await readSlot(held, inventory.slot)).exists).toBe(false);
    await eventually(async () => (await captureBackends()).length === 0, 5_000, 'every capture connection closed');
    expect(await recorded(pipeline)).toEqual(before);
    // the cancel ended the creation only: the transaction held open goes on
    await held.query(`select 1`);
    await held.query('commit');

    const p = await captureUntilCovered(pipeline);
    expect(p).toMatchObject({ slotCreated: true, slotLost: false });
    expect(await readCaptureProgress(pipeline, 'inventory')).toMatchObject({ lostAtMs: null });
  }, 60_000);

  it('a cancelled capture activity ends cancelled while its session waits to create the slot', async () => {
    const acts = createCaptureActivities({
      pool: pipeline,
      config: loadConfig({ ...process.env, DATABASE_URL: TEST_DATABASE_URL, ...SPLIT_SOURCE_CONFIG }),
    });
    const env = new MockActivityEnvironment();
    const run = env.run(acts.captureSource, { source: 'inventory', owner: 'open-abort-test', budgetMs: 300 });
    const settled = run.then(
      () => 'completed',
      () => 'failed',
    );
    try {
      await eventually(creatingSlot, 10_000, 'the session waiting to create the slot');
      const before = await recorded(pipeline);
      const cancelledAt = Date.now();
      env.cancel();
      const outcome = await Promise.race([settled, sleep(5_000).then(() => 'still waiting')]);
      expect(outcome).toBe('failed');
      await expect(run).rejects.toBeInstanceOf(CancelledFailure);
      expect(Date.now() - cancelledAt).toBeLessThan(5_000);
      expect((await readSlot(held, inventory.slot)).exists).toBe(false);
      await eventually(async () => (await captureBackends()).length === 0, 5_000, 'every capture connection closed');
      expect(await recorded(pipeline)).toEqual(before);
    } finally {
      await held.query('rollback').catch(() => undefined);
      await run.catch(() => undefined);
      await closeCaptureSessions();
    }
  }, 60_000);
});

describe('a capture session opening behind a transaction held open, as its worker shuts down', () => {
  // The worker's shutdown is no cancellation: the activity fails, retryable, for another worker.
  it('ends the open and fails the activity as retryable, leaving no slot', async () => {
    const stopping = new AbortController();
    const acts = createCaptureActivities({
      pool: pipeline,
      config: loadConfig({ ...process.env, DATABASE_URL: TEST_DATABASE_URL, ...SPLIT_SOURCE_CONFIG }),
      stopping: stopping.signal,
    });
    const run = new MockActivityEnvironment().run(acts.captureSource, {
      source: 'inventory',
      owner: 'open-abort-test',
      budgetMs: 300,
    });
    const settled = run.then(
      () => 'completed',
      (err: unknown) => err,
    );
    try {
      await eventually(creatingSlot, 10_000, 'the session waiting to create the slot');
      stopping.abort();
      const outcome = await Promise.race([settled, sleep(5_000).then(() => 'still waiting')]);
      expect(outcome).toBeInstanceOf(ApplicationFailure);
      expect(outcome).toMatchObject({ type: 'WorkerShutdown', nonRetryable: false });
      expect((await readSlot(held, inventory.slot)).exists).toBe(false);
      await eventually(async () => (await captureBackends()).length === 0, 5_000, 'every capture connection closed');
    } finally {
      await held.query('rollback').catch(() => undefined);
      await run.catch(() => undefined);
      await closeCaptureSessions();
    }
  }, 60_000);
});
