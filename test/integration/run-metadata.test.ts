/**
 * What the Temporal Web UI shows without a query, and how runs are found: the drain chain's
 * summary, its current details (state, rounded figures), its search attributes (kind, and the
 * outcome once it ends), carried across continue-as-new; a backfill's progress in its details.
 * Real worker, real schedules, the shared dev server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import { ALL_SCHEDULE_IDS, drainScheduleIds, ensureSchedules, triggerDrains } from '../../scripts/lib/schedules';
import { seedCatalogue } from '../../simulator/catalogue';
import { runTraffic } from '../../simulator/traffic';
import { backfillWorkflow, stopDrainSignal } from '../../workflows';
import { RUN_KIND, RUN_OUTCOME, runTags } from '../../workflows/search-attributes';
import {
  deleteSchedules,
  eventually,
  resetState,
  sharedTestServer,
  startWorker,
  temporalClient,
  testClients,
} from '../support/env';

const taskQueue = `run-metadata-${process.pid}`;
const c = testClients({
  TEMPORAL_TASK_QUEUE: taskQueue,
  // chains continue as new every 5 s here, so the carry of attributes is seen within the test
  DRAIN_INTERVAL_MS: '5000',
  CHAIN_RUN_MS: '5000',
  DRAIN_ACTIVITY_BUDGET_MS: '1000',
  VERIFY_INTERVAL_MS: '86400000',
});
const size = { skus: 300, fcs: 4, regions: 2, fcsPerRegion: 2, fcsPerSku: 2 };
const { address, bundlePath } = sharedTestServer();
let worker: Awaited<ReturnType<typeof startWorker>>;
let temporal: Awaited<ReturnType<typeof temporalClient>>;

type Metadata = { currentDetails?: string };
const detailsOf = async (client: Client, workflowId: string, runId?: string) =>
  ((await client.workflow.getHandle(workflowId, runId).query('__temporal_workflow_metadata')) as Metadata)
    .currentDetails ?? '';

async function listed(query: string): Promise<WorkflowExecutionInfo[]> {
  const found: WorkflowExecutionInfo[] = [];
  for await (const w of temporal.client.workflow.list({ query: `${query} AND TaskQueue = '${taskQueue}'` }))
    found.push(w);
  return found;
}

beforeAll(async () => {
  await resetState(c);
  await seedCatalogue(c.pool, size);
  worker = await startWorker(c, address, bundlePath, taskQueue);
  temporal = await temporalClient(address);
  await ensureSchedules(temporal.client, c.config, 1);
  await triggerDrains(temporal.client, 1);
});
afterAll(async () => {
  await deleteSchedules(temporal?.client, [...ALL_SCHEDULE_IDS, ...drainScheduleIds(1)]);
  for (const w of await listed(`ExecutionStatus = 'Running'`).catch(() => []))
    await temporal.client.workflow
      .getHandle(w.workflowId)
      .terminate('test over')
      .catch(() => undefined);
  await worker?.stop();
  await temporal?.close();
  await c.close();
});

describe('runs as the Web UI shows them', () => {
  it('the drain chain: found by its kind, with a summary, rounded current details, carried across continue-as-new', async () => {
    // visibility is eventually consistent: the list finds the run a moment after it starts
    const [first] = await eventually(
      async () => {
        const runs = await listed(`FreshBadgesKind = 'drain' AND ExecutionStatus = 'Running'`);
        return runs.length ? runs : null;
      },
      15_000,
      'the drain chain, by its search attribute',
    );
    const d = await temporal.client.workflow.getHandle(first.workflowId).describe();
    expect(d.typedSearchAttributes.get(RUN_KIND)).toBe('drain');
    expect(await d.staticSummary()).toBe('Drain: outbox → Redis online store (state in the current details)');
    expect(await d.staticDetails()).toMatch(
      /^Started by the schedule `fresh-badges-drain`, which drains the CDC outbox/,
    );

    await runTraffic(c.pool, { rate: 300, durationMs: 1500, connections: 2, seed: 5, size });
    const details = await eventually(
      async () => {
        const text = await detailsOf(temporal.client, first.workflowId);
        return /newest change applied/.test(text) && /^caught up/.test(text) ? text : null;
      },
      20_000,
      'the drain to report the traffic it applied',
    );
    expect(details).toMatch(
      /^caught up · newest change applied \d+(\.\d)? (ms|s) after it was written · this run: [\d,]+ rows in [\d,]+ batches, [\d,]+ dead letters · batch size [\d,]+ · cursor batch \d+$/,
    );
    expect(details).not.toMatch(/\d\.\d{2,}/); // no unrounded floats

    // Its runs continue as new every 5 s here: a later run of the same chain keeps the kind.
    const later = await eventually(
      async () => {
        const d2 = await temporal.client.workflow.getHandle(first.workflowId).describe();
        return d2.runId !== d.runId && d2.status.name === 'RUNNING' ? d2 : null;
      },
      20_000,
      'a continued run of the chain',
    );
    expect(later.typedSearchAttributes.get(RUN_KIND)).toBe('drain');
  });

  it('a paused drain says so, and its run is found by its outcome', async () => {
    const [run] = await listed(`FreshBadgesKind = 'drain' AND ExecutionStatus = 'Running'`);
    await temporal.client.schedule.getHandle(drainScheduleIds(1)[0]).pause('test');
    const handle = temporal.client.workflow.getHandle(run.workflowId);
    await handle.signal(stopDrainSignal);
    const summary = await handle.result();
    expect(summary.outcome).toBe('stopped');
    const d = await handle.describe();
    expect(d.typedSearchAttributes.get(RUN_OUTCOME)).toBe('stopped');
    expect(await detailsOf(temporal.client, run.workflowId, d.runId)).toMatch(/^PAUSED \(ops pause or a stop signal\)/);
    await eventually(
      async () => (await listed(`FreshBadgesKind = 'drain' AND FreshBadgesOutcome = 'stopped'`)).length > 0,
      15_000,
      'the stopped run, by its outcome',
    );
  });

  it('a running backfill shows its progress: table, rows of the estimate, rate', async () => {
    const handle = await temporal.client.workflow.start(backfillWorkflow, {
      taskQueue,
      workflowId: `backfill-run-metadata-${Date.now()}`,
      args: [{ chunkRows: 50, rowsPerSecond: 500 }],
      typedSearchAttributes: runTags('backfill'),
    });
    const during = await eventually(
      async () => {
        const text = await detailsOf(temporal.client, handle.workflowId);
        return /^table /.test(text) ? text : null;
      },
      20_000,
      'the backfill to report a chunk',
    );
    expect(during).toMatch(
      /^table \w+ \([1-4] of 4\) · [\d,]+( of [\d,]+)? source rows( \(\d+ %\))? · [\d,]+ rows\/s( · about .+ left)?$/,
    );
    const r = await handle.result();
    expect(await detailsOf(temporal.client, handle.workflowId)).toBe(
      `done · ${r.rows.toLocaleString('en-US')} source rows, ${r.counters.toLocaleString('en-US')} FC load counters; the store is complete`,
    );
    expect((await handle.describe()).typedSearchAttributes.get(RUN_KIND)).toBe('backfill');
  });
});
