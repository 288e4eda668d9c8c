/**
 * The drain workflow on its own (and the backfill's and the capture's, where a scenario needs it):
 * the real workflow code on a real Temporal server with its activities mocked, so every branch of
 * the loop is driven by what the mocked batches return.
 * The server (test/support/workflow-test-server.ts) suggests continue-as-new after a few batches.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { defaultPayloadConverter } from '@temporalio/common';
import type { History } from '@temporalio/common/lib/proto-utils';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Activities } from '../../activities';
import { loadConfig } from '../../config';
import { drainScheduleOptions } from '../../scripts/lib/schedules';
import {
  AUTO_BACKFILL_ID,
  backfillWorkflow,
  captureWorkflow,
  drainWorkflow,
  skuRebuildWorkflowId,
  stopCaptureSignal,
  stopDrainSignal,
  type DrainWorkflowInput,
} from '../../workflows';
import { sharedTestServer } from '../support/env';
import {
  resultWillSuggestContinueAsNew,
  startChainTestServer,
  suggestedAfterSignal,
} from '../support/workflow-test-server';

type DrainBatchInput = Parameters<Activities['drainBatch']>[0];
type DrainBatchResult = Awaited<ReturnType<Activities['drainBatch']>>;
type LeaseState = Awaited<ReturnType<Activities['acquireDrainLease']>>;

/** No interval ends during a test that is not about it. */
const HOUR_MS = 3_600_000;

const CURSOR: DrainBatchResult['cursor'] = {
  batch: '1',
  from: '1:1:',
  fromAt: null,
  to: null,
  toAt: null,
  position: { txid: '0', id: '0' },
  last: { batch: '0', txid: '0', id: '0' },
};

let env: TestWorkflowEnvironment;
let taskQueues = 0;

beforeAll(async () => {
  env = await startChainTestServer();
});
afterAll(async () => {
  await env?.teardown();
});

/** What a mocked batch returns when a scenario says nothing else: an idle, caught-up batch. */
function batchResult(overrides: Partial<DrainBatchResult>): DrainBatchResult {
  return {
    outcome: 'applied',
    rows: 0,
    applied: 0,
    deadLetters: 0,
    cursor: CURSOR,
    caughtUp: true,
    newestSourceMs: null,
    ...overrides,
  };
}

interface DrainScenario {
  /** The lease answer of the n-th acquireDrainLease call (1-based); acquired by default. */
  lease?: (n: number, owner: string) => LeaseState | Promise<LeaseState>;
  /** What the n-th batch (1-based) returns. */
  batch?: (n: number, input: DrainBatchInput) => Partial<DrainBatchResult> | Promise<Partial<DrainBatchResult>>;
}

/** The drain's three activities as plain functions that record every call in order. */
function drainActivities(scenario: DrainScenario) {
  const calls = {
    leases: 0,
    released: [] as string[],
    batches: [] as DrainBatchInput[],
    /** The runs of the chain that called an activity, in order (a continued run takes no lease). */
    runs: [] as string[],
    order: [] as Array<'run' | 'lease' | 'batch'>,
  };
  const noteRun = () => {
    const runId = Context.current().info.workflowExecution?.runId ?? '';
    if (calls.runs.includes(runId)) return;
    calls.runs.push(runId);
    calls.order.push('run');
  };
  const activities: Pick<Activities, 'acquireDrainLease' | 'releaseDrainLease' | 'drainBatch'> = {
    async acquireDrainLease({ owner }) {
      noteRun();
      calls.leases += 1;
      calls.order.push('lease');
      return (await scenario.lease?.(calls.leases, owner)) ?? { acquired: true, holder: owner, expiresInMs: 30_000 };
    },
    async releaseDrainLease({ owner }) {
      calls.released.push(owner);
      return true;
    },
    async drainBatch(input) {
      noteRun();
      calls.batches.push(input);
      calls.order.push('batch');
      return batchResult((await scenario.batch?.(calls.batches.length, input)) ?? {});
    },
  };
  return { activities, calls };
}

/** Runs `fn` while a worker with these activities polls a task queue of its own. */
async function withWorker<T>(activities: object, fn: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = `drain-unit-${process.pid}-${++taskQueues}`;
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: { codePath: sharedTestServer().bundlePath },
    activities,
  });
  return worker.runUntil(fn(taskQueue));
}

/** The run's history replays against the current workflow bundle (determinism). */
async function replaysAsRecorded(workflowId: string): Promise<void> {
  const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
  await Worker.runReplayHistory({ workflowBundle: { codePath: sharedTestServer().bundlePath } }, history, workflowId);
}

/** `ops pause`: sent from inside a mocked activity, so it arrives while that activity runs. */
const stopDrain = (workflowId: string) => env.client.workflow.getHandle(workflowId).signal(stopDrainSignal);

function startDrain(taskQueue: string, input: Partial<DrainWorkflowInput> = {}) {
  return env.client.workflow.start(drainWorkflow, {
    taskQueue,
    workflowId: `drain-unit-${Date.now()}-${taskQueues}`,
    args: [{ intervalMs: HOUR_MS, idleWaitMs: 0, ...input }],
  });
}

/** The child workflows a run started (or tried to), by outcome, from its history. */
function childStarts(history: History) {
  const events = history.events ?? [];
  const ids = (pick: (e: (typeof events)[number]) => { workflowId?: string | null } | null | undefined) =>
    events.map(pick).flatMap((a) => (a?.workflowId ? [a.workflowId] : []));
  return {
    initiated: ids((e) => e.startChildWorkflowExecutionInitiatedEventAttributes),
    started: ids((e) => e.childWorkflowExecutionStartedEventAttributes?.workflowExecution),
    alreadyRunning: ids((e) => e.startChildWorkflowExecutionFailedEventAttributes),
  };
}

describe('drain workflow (mocked activities)', () => {
  it('doubles the batch size while batches come back full, up to the maximum, and falls back to the base when one is not', async () => {
    const { activities, calls } = drainActivities({
      async batch(n, input) {
        if (n === 7) await stopDrain(input.owner);
        return { rows: n <= 5 ? input.maxRows : 10, caughtUp: n > 5 };
      },
    });
    const summary = await withWorker(activities, async (taskQueue) =>
      (await startDrain(taskQueue, { batchSize: 100, maxBatchSize: 800 })).result(),
    );

    expect(calls.batches.map((b) => b.maxRows)).toEqual([100, 200, 400, 800, 800, 800, 100]);
    expect(summary).toMatchObject({ outcome: 'stopped', batches: 7, rows: 100 + 200 + 400 + 800 + 800 + 10 + 10 });
  });

  it('on `stop` finishes the batch in flight, starts no other, releases the lease and ends stopped', async () => {
    const { activities, calls } = drainActivities({
      async batch(n, input) {
        if (n === 2) await stopDrain(input.owner);
        return { rows: 3, applied: 2, deadLetters: n === 2 ? 1 : 0 };
      },
    });
    const { workflowId, summary } = await withWorker(activities, async (taskQueue) => {
      const run = await startDrain(taskQueue);
      return { workflowId: run.workflowId, summary: await run.result() };
    });

    expect(summary).toEqual({ outcome: 'stopped', batches: 2, rows: 6, applied: 4, deadLetters: 1 });
    expect(calls.batches).toHaveLength(2);
    expect(calls.batches[0].owner).toBe(workflowId);
    expect(calls.released).toEqual([workflowId]);
  });

  // Temporal does not retry an activity once its cancellation was asked for: the batch in flight
  // failing then (its worker killed, its last commit failing) reached the run as a failure, which
  // failed it with the lease kept (an `ops resume` within the TTL found it held).
  it('on `stop`, a batch that then fails ends the run stopped too, its lease released', async () => {
    const { activities, calls } = drainActivities({
      async batch(n, input) {
        if (n === 2) {
          await stopDrain(input.owner);
          // the cancellation reaches the activity with a heartbeat's answer
          for (let i = 0; i < 100 && !Context.current().cancellationSignal.aborted; i++) {
            Context.current().heartbeat();
            await new Promise((r) => setTimeout(r, 100));
          }
          throw ApplicationFailure.retryable('the last commit failed', 'CommitFailed');
        }
        return { rows: 3, applied: 3 };
      },
    });
    const { workflowId, summary } = await withWorker(activities, async (taskQueue) => {
      const run = await startDrain(taskQueue);
      return { workflowId: run.workflowId, summary: await run.result() };
    });

    expect(summary).toMatchObject({ outcome: 'stopped', batches: 1 });
    expect(calls.batches).toHaveLength(2); // not retried
    expect(calls.released).toEqual([workflowId]);
  });

  it('exits without a batch when another run holds the lease', async () => {
    const { activities, calls } = drainActivities({
      lease: () => ({ acquired: false, holder: 'drain-other', expiresInMs: 20_000 }),
    });
    const summary = await withWorker(activities, async (taskQueue) => (await startDrain(taskQueue)).result());

    expect(summary).toEqual({
      outcome: 'lease-held',
      holder: 'drain-other',
      batches: 0,
      rows: 0,
      applied: 0,
      deadLetters: 0,
    });
    expect(calls.batches).toHaveLength(0);
    expect(calls.released).toEqual([]);
  });

  it('exits when a batch finds the lease taken over, without releasing the new holder’s lease', async () => {
    const { activities, calls } = drainActivities({
      batch: (n) => (n === 3 ? { outcome: 'lease-lost', holder: 'drain-other' } : { rows: 5, applied: 5 }),
    });
    const summary = await withWorker(activities, async (taskQueue) => (await startDrain(taskQueue)).result());

    expect(summary).toEqual({
      outcome: 'lease-lost',
      holder: 'drain-other',
      batches: 2,
      rows: 10,
      applied: 10,
      deadLetters: 0,
    });
    expect(calls.batches).toHaveLength(3);
    expect(calls.released).toEqual([]);
  });

  it('continues-as-new when the server suggests it, carrying the summary into the next run', async () => {
    let signalled = false;
    const { activities, calls } = drainActivities({
      async batch(_n, input) {
        // Two continue-as-new done (a batch of the third run): enough to see the carry.
        if (calls.runs.length >= 3 && !signalled) {
          signalled = true;
          await stopDrain(input.owner);
        }
        return { rows: 2, applied: 1 };
      },
    });
    const summary = await withWorker(activities, async (taskQueue) => (await startDrain(taskQueue)).result());

    expect(calls.runs.length).toBeGreaterThanOrEqual(3);
    // Only the chain's first run takes the lease: a continued run holds it already.
    expect(calls.leases).toBe(1);
    // Every run's batches, not only the last run's.
    expect(summary).toEqual({
      outcome: 'stopped',
      batches: calls.batches.length,
      rows: 2 * calls.batches.length,
      applied: calls.batches.length,
      deadLetters: 0,
    });
  });

  // The stop cancels the batch, which returns normally (WAIT_CANCELLATION_COMPLETED): when the
  // server suggests continue-as-new on that very result, the chain must end, not go on in a run
  // that never got the signal while `ops pause` reports it stopped.
  it('a stop in the batch the server suggests continue-as-new after ends the chain there', async () => {
    let stoppedRun: string | undefined;
    const { activities, calls } = drainActivities({
      async batch(_n, input) {
        const runId = Context.current().info.workflowExecution?.runId ?? '';
        if (stoppedRun && runId !== stoppedRun) {
          await stopDrain(input.owner); // the stop was lost: end the chain so that the test ends
        } else if (!stoppedRun && (await resultWillSuggestContinueAsNew(env.client, input.owner))) {
          stoppedRun = runId;
          await stopDrain(input.owner);
        }
        return { rows: 1, applied: 1 };
      },
    });
    const { workflowId, summary } = await withWorker(activities, async (taskQueue) => {
      const run = await startDrain(taskQueue);
      return { workflowId: run.workflowId, summary: await run.result() };
    });

    // the scenario happened: the result of the stopped batch came with the suggestion
    expect(await suggestedAfterSignal(env.client, workflowId, stoppedRun)).toBe(true);
    expect(calls.runs).toEqual([stoppedRun]); // no run after the stop
    expect(summary).toMatchObject({ outcome: 'stopped', batches: calls.batches.length });
    expect(calls.released).toEqual([workflowId]);
    await replaysAsRecorded(workflowId); // the patch marker it recorded replays
  });

  it('continues-as-new at the end of its interval with a fresh summary for the next interval', async () => {
    let signalled = false;
    const { activities, calls } = drainActivities({
      // Like a real idle batch: waits as long as it is told to (so a run of about a second stays
      // far below the continue-as-new suggestion threshold). The third run (two interval ends
      // later) is stopped in its first batch.
      batch: async (_n, input) => {
        if (calls.runs.length === 3 && !signalled) {
          signalled = true;
          await stopDrain(input.owner);
        }
        await new Promise((resolve) => setTimeout(resolve, input.waitMs));
        return { rows: 1 };
      },
    });
    const summary = await withWorker(activities, async (taskQueue) =>
      // runs of 1.5-2.5 s (a run ends at the next whole interval at least half an interval away):
      // with 1-s intervals a first run of 0.5 s, its lease activity included, held one batch on a
      // loaded machine
      (await startDrain(taskQueue, { intervalMs: 2_000, marginMs: 0, idleWaitMs: 250 })).result(),
    );

    const batchesPerRun = calls.order
      .join(' ')
      .split('run')
      .slice(1)
      .map((run) => run.split('batch').length - 1);
    expect(batchesPerRun).toHaveLength(3);
    expect(batchesPerRun[0]).toBeGreaterThan(1);
    expect(batchesPerRun[1]).toBeGreaterThan(1);
    expect(calls.leases).toBe(1); // the first run's: continued runs hold it already
    // Waits never run past the interval's end (stopAt), whatever idleWaitMs says.
    expect(calls.batches.every((b) => (b.waitMs ?? 0) <= 250)).toBe(true);
    // The third run's summary is its own (at most the batch it was stopped in), not the chain's.
    expect(summary.outcome).toBe('stopped');
    expect(summary.batches).toBeLessThanOrEqual(1);
  });

  it('starts the automatic backfill once, with the configured chunk size and rate', async () => {
    // The configuration reaches the drain through its schedule's arguments.
    const config = loadConfig({ BACKFILL_CHUNK_ROWS: '1234', BACKFILL_ROWS_PER_S: '4321' });
    const scheduled = drainScheduleOptions(config).action.args![0] as DrainWorkflowInput;
    expect(scheduled).toMatchObject({ backfillChunkRows: 1234, backfillRowsPerSecond: 4321 });

    const drain = drainActivities({
      async batch(n, input) {
        if (n === 3) await stopDrain(input.owner);
        return { storeIncomplete: true };
      },
    });
    const backfill = { plans: 0, chunkLimits: [] as number[], epochs: [] as string[] };
    const backfillActivities: Pick<Activities, 'backfillPlan' | 'backfillChunk' | 'backfillLoads' | 'finishBackfill'> =
      {
        async backfillPlan() {
          backfill.plans += 1;
          return { fulfillment_centers: 0, region_fc: 0, skus: 0, inventory: 0 };
        },
        async backfillChunk(input) {
          backfill.chunkLimits.push(input.limit);
          return { rows: 0, last: null, filled: 0 };
        },
        async backfillLoads() {
          return { counters: 0, cursor: CURSOR };
        },
        async finishBackfill(input) {
          backfill.epochs.push(input.epoch);
          return { incomplete: [] };
        },
      };

    const { drainHistory, backfillHistory } = await withWorker(
      { ...drain.activities, ...backfillActivities },
      async (taskQueue) => {
        const run = await startDrain(taskQueue, { ...scheduled, intervalMs: HOUR_MS, idleWaitMs: 0 });
        expect(await run.result()).toMatchObject({ outcome: 'stopped', batches: 3 });
        const child = env.client.workflow.getHandle<typeof backfillWorkflow>(AUTO_BACKFILL_ID);
        await child.result();
        return { drainHistory: await run.fetchHistory(), backfillHistory: await child.fetchHistory() };
      },
    );

    // Three batches said the store is incomplete; one backfill was started.
    expect(childStarts(drainHistory).initiated).toEqual([AUTO_BACKFILL_ID]);
    expect(backfill.plans).toBe(1);
    const [payload] = backfillHistory.events?.[0].workflowExecutionStartedEventAttributes?.input?.payloads ?? [];
    expect(defaultPayloadConverter.fromPayload(payload)).toMatchObject({ chunkRows: 1234, rowsPerSecond: 4321 });
    expect(backfill.chunkLimits).toEqual([1234, 1234, 1234, 1234]); // one chunk per table, each empty
    expect(backfill.epochs).toHaveLength(1);
  });

  // With drain shards, the first request may find a backfill already running that began before
  // this shard's loss: it does not complete this shard's partitions. The drain asks again while its
  // store stays incomplete (a new backfill once the running one has ended).
  it('asks for the automatic backfill again while the store stays incomplete, each time twice as long after', async () => {
    const drain = drainActivities({
      async batch(n, input) {
        await new Promise((resolve) => setTimeout(resolve, 400));
        if (n === 5) await stopDrain(input.owner);
        return { storeIncomplete: true };
      },
    });
    let plans = 0;
    const backfillActivities: Pick<Activities, 'backfillPlan' | 'backfillChunk' | 'backfillLoads' | 'finishBackfill'> =
      {
        async backfillPlan() {
          plans += 1;
          return { fulfillment_centers: 0, region_fc: 0, skus: 0, inventory: 0 };
        },
        async backfillChunk() {
          return { rows: 0, last: null, filled: 0 };
        },
        async backfillLoads() {
          return { counters: 0, cursor: CURSOR };
        },
        async finishBackfill() {
          return { incomplete: [] };
        },
      };
    const history = await withWorker({ ...drain.activities, ...backfillActivities }, async (taskQueue) => {
      const run = await startDrain(taskQueue, { backfillAskAgainMs: 300 });
      expect(await run.result()).toMatchObject({ outcome: 'stopped', batches: 5 });
      await env.client.workflow.getHandle<typeof backfillWorkflow>(AUTO_BACKFILL_ID).result();
      return run.fetchHistory();
    });
    // Five incomplete batches 400 ms apart: asked after the first, again after the second (300 ms
    // waited), then 600 ms later (after the fourth), not after every batch.
    const asks = childStarts(history).initiated;
    expect(new Set(asks)).toEqual(new Set([AUTO_BACKFILL_ID]));
    expect(asks.length).toBeGreaterThanOrEqual(3);
    expect(asks.length).toBeLessThan(5);
    expect(plans).toBeGreaterThanOrEqual(2); // the backfill ended in between: a new one started
  });

  it('starts one rebuild per SKU when two batches report the same SKUs, the second start finding it running', async () => {
    const drain = drainActivities({
      async batch(n, input) {
        if (n === 2) await stopDrain(input.owner);
        return { rebuildSkus: ['S1', 'S2'] };
      },
    });
    // The rebuilds stay running until the drain is done, so the second batch's starts find them.
    let releaseRebuilds!: () => void;
    const rebuildsMayFinish = new Promise<void>((resolve) => (releaseRebuilds = resolve));
    const refreshed: string[] = [];
    const finished: string[] = [];
    const rebuildActivities: Pick<Activities, 'refreshSku' | 'finishSkuRebuild'> = {
      async refreshSku({ sku }) {
        refreshed.push(sku);
        await rebuildsMayFinish;
        return { rows: 1, snapshot: `snapshot-of-${sku}` };
      },
      async finishSkuRebuild({ sku, snapshot }) {
        finished.push(`${sku}@${snapshot}`);
      },
    };

    const history = await withWorker({ ...drain.activities, ...rebuildActivities }, async (taskQueue) => {
      try {
        const run = await startDrain(taskQueue);
        expect(await run.result()).toMatchObject({ outcome: 'stopped', batches: 2 });
        releaseRebuilds();
        for (const sku of ['S1', 'S2'])
          expect(await env.client.workflow.getHandle(skuRebuildWorkflowId(sku)).result()).toEqual({ rows: 1 });
        return run.fetchHistory();
      } finally {
        releaseRebuilds(); // a failed drain must not leave the worker's shutdown waiting on a rebuild
      }
    });

    const ids = ['sku-rebuild-S1', 'sku-rebuild-S2'];
    const children = childStarts(history);
    expect(children.initiated.sort()).toEqual([...ids, ...ids].sort());
    expect(children.started.sort()).toEqual(ids);
    expect(children.alreadyRunning.sort()).toEqual(ids);
    expect(refreshed.sort()).toEqual(['S1', 'S2']);
    // each request is cleared after its re-emission, with the snapshot that saw the re-emitted rows
    expect(finished.sort()).toEqual(['S1@snapshot-of-S1', 'S2@snapshot-of-S2']);
  });

  // A mass reactivation must not take a run past Temporal's limit of pending children: the
  // requests past the cap stay in the store, and the next run starts them. A start that finds the
  // SKU's rebuild running adds no child, and does not count.
  it('starts at most maxRebuildsPerRun rebuilds in one run, counting only those it started', async () => {
    const reported: Record<number, string[]> = { 1: ['C1', 'C2'], 2: ['C1', 'C3', 'C4'], 3: ['C5'] };
    const drain = drainActivities({
      async batch(n, input) {
        if (n === 3) await stopDrain(input.owner);
        return { rebuildSkus: reported[n] };
      },
    });
    let releaseRebuilds!: () => void;
    const rebuildsMayFinish = new Promise<void>((resolve) => (releaseRebuilds = resolve));
    const rebuildActivities: Pick<Activities, 'refreshSku' | 'finishSkuRebuild'> = {
      async refreshSku() {
        await rebuildsMayFinish; // running while the drain goes on
        return { rows: 1, snapshot: 'snapshot' };
      },
      finishSkuRebuild: async () => undefined,
    };
    const history = await withWorker({ ...drain.activities, ...rebuildActivities }, async (taskQueue) => {
      try {
        const run = await startDrain(taskQueue, { maxRebuildsPerRun: 3 });
        expect(await run.result()).toMatchObject({ outcome: 'stopped', batches: 3 });
        releaseRebuilds();
        for (const sku of ['C1', 'C2', 'C3']) await env.client.workflow.getHandle(skuRebuildWorkflowId(sku)).result();
        return run.fetchHistory();
      } finally {
        releaseRebuilds();
      }
    });
    const children = childStarts(history);
    // batch 2: one left, C1 running (not counted), C3 started; batch 3: none left
    expect(children.started.sort()).toEqual(['sku-rebuild-C1', 'sku-rebuild-C2', 'sku-rebuild-C3']);
    expect(children.alreadyRunning).toEqual(['sku-rebuild-C1']);
  });
});

describe('backfill workflow (mocked activities)', () => {
  // Redis came back from an older state mid-backfill (activities/backfill/backfill.ts): the step
  // that notices fails for good, and the backfill starts again, under a new marker, from the first
  // table, instead of marking a store with holes complete.
  it('starts again from the first table when the store lost the writes of earlier steps', async () => {
    const chunks: { table: string; marker?: string; step?: number }[] = [];
    const finished: { marker?: string; steps?: number }[] = [];
    let failed = false;
    const activities: Pick<Activities, 'backfillPlan' | 'backfillChunk' | 'backfillLoads' | 'finishBackfill'> = {
      backfillPlan: async () => ({ fulfillment_centers: 1, region_fc: 1, skus: 1, inventory: 1 }),
      async backfillChunk(input) {
        chunks.push({ table: input.table, marker: input.marker, step: input.step });
        if (input.step === 3 && !failed) {
          failed = true;
          throw ApplicationFailure.nonRetryable('steps lost', 'BackfillWritesLost');
        }
        return { rows: 1, last: null, filled: 1 };
      },
      backfillLoads: async () => ({ counters: 0, cursor: CURSOR }),
      async finishBackfill(input) {
        finished.push({ marker: input.marker, steps: input.steps });
        return { incomplete: [] };
      },
    };
    await withWorker(activities, async (taskQueue) => {
      const run = await env.client.workflow.start(backfillWorkflow, {
        taskQueue,
        workflowId: `backfill-unit-${Date.now()}`,
        args: [{ chunkRows: 10, rowsPerSecond: 0 }],
      });
      expect(await run.result()).toEqual({ rows: 4, counters: 0 });
    });
    const tables = ['fulfillment_centers', 'region_fc', 'skus', 'inventory'];
    expect(chunks.map((c) => `${c.table}#${c.step}`)).toEqual([
      'fulfillment_centers#1',
      'region_fc#2',
      'skus#3', // lost writes found: again from the start
      ...tables.map((t, i) => `${t}#${i + 1}`),
    ]);
    expect(chunks[3]!.marker).not.toBe(chunks[0]!.marker);
    expect(finished).toEqual([{ marker: chunks[3]!.marker, steps: 5 }]);
  });

  // A step whose worker died says nothing more: its heartbeat timeout has it retried (on another
  // worker, or this one started again) within seconds, not after its 5-minute start-to-close, while
  // reads of the emptied store wait stale. (Here the first attempt hangs without a heartbeat, as a
  // dead worker's would.)
  it('retries a step that stopped heartbeating within its heartbeat timeout', async () => {
    let release: () => void = () => undefined;
    const hung = new Promise<void>((r) => (release = r));
    let attempts = 0;
    const activities: Pick<Activities, 'backfillPlan' | 'backfillChunk' | 'backfillLoads' | 'finishBackfill'> = {
      backfillPlan: async () => ({ fulfillment_centers: 1, region_fc: 1, skus: 1, inventory: 1 }),
      async backfillChunk() {
        if (++attempts === 1) await hung;
        return { rows: 1, last: null, filled: 1 };
      },
      backfillLoads: async () => ({ counters: 0, cursor: CURSOR }),
      finishBackfill: async () => ({ incomplete: [] }),
    };
    try {
      await withWorker(activities, async (taskQueue) => {
        const run = await env.client.workflow.start(backfillWorkflow, {
          taskQueue,
          workflowId: `backfill-unit-silent-${Date.now()}`,
          args: [{ chunkRows: 10, rowsPerSecond: 0 }],
        });
        const result = await run.result();
        release(); // (the worker waits for its activities as it stops)
        expect(result).toEqual({ rows: 4, counters: 0 });
      });
    } finally {
      release();
    }
    expect(attempts).toBe(5); // the first chunk twice, then the three others
  }, 120_000); // (without the heartbeat timeout the retry comes after 5 minutes: this times out)
});

describe('capture workflow (mocked activities)', () => {
  // As the drain's: the stopped activity returns normally, and the suggestion on its result must
  // not continue the chain into a run that never got the signal.
  it('a stop in the activity the server suggests continue-as-new after ends the chain there', async () => {
    const runs: string[] = [];
    const released: string[] = [];
    let stoppedRun: string | undefined;
    const stopCapture = (workflowId: string) => env.client.workflow.getHandle(workflowId).signal(stopCaptureSignal);
    const activities: Pick<Activities, 'acquireCaptureLease' | 'releaseCaptureLease' | 'captureSource'> = {
      acquireCaptureLease: async ({ owner }) => ({ acquired: true, holder: owner, expiresInMs: 30_000 }),
      async releaseCaptureLease({ owner }) {
        released.push(owner);
        return true;
      },
      async captureSource({ source, owner }) {
        const runId = Context.current().info.workflowExecution?.runId ?? '';
        if (!runs.includes(runId)) runs.push(runId);
        if (stoppedRun && runId !== stoppedRun) {
          await stopCapture(owner); // the stop was lost: end the chain so that the test ends
        } else if (!stoppedRun && (await resultWillSuggestContinueAsNew(env.client, owner))) {
          stoppedRun = runId;
          await stopCapture(owner);
        }
        return {
          outcome: 'captured',
          elapsedMs: 1,
          source,
          lsn: '0/1',
          transactions: 1,
          rows: 1,
          coveredAtMs: null,
          slotCreated: false,
          handedBack: false,
          slotLost: false,
          refillQueued: false,
        };
      },
    };
    const workflowId = `capture-unit-${Date.now()}`;
    const summary = await withWorker(activities, async (taskQueue) =>
      env.client.workflow.execute(captureWorkflow, {
        taskQueue,
        workflowId,
        args: [{ source: 'shop', intervalMs: HOUR_MS, activityBudgetMs: 1_000 }],
      }),
    );

    expect(await suggestedAfterSignal(env.client, workflowId, stoppedRun)).toBe(true);
    expect(runs).toEqual([stoppedRun]); // no run after the stop
    expect(summary.outcome).toBe('stopped');
    expect(released).toEqual([workflowId]);
    await replaysAsRecorded(workflowId);
  });
});
