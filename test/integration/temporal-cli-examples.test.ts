/**
 * The Temporal CLI examples of docs/operations.md ("Starting runs from the Temporal CLI") run
 * exactly as written, through bash, with the CLI the set-up installs, against this run's dev server
 * and a real worker process polling the task queues the examples name. Only the environment
 * differs from an operator's shell: TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE point at the test
 * server, and the CLI's directory is on PATH.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { RUN_KIND, kindOfWorkflowType } from '../../workflows/search-attributes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALL_SCHEDULE_IDS, drainScheduleIds, ensureSchedules } from '../../scripts/lib/schedules';
import { findTemporalCli } from '../../scripts/lib/temporal-server';
import { seedCatalogue } from '../../simulator/catalogue';
import { docExamples } from '../support/doc-examples';
import { deleteSchedules, eventually, resetState, sharedTestServer, temporalClient, testClients } from '../support/env';
import { exited, spawnWorker } from '../support/worker-process';

const ROOT = path.resolve(__dirname, '..', '..');
const examples = new Map(
  docExamples(fs.readFileSync(path.join(ROOT, 'docs/operations.md'), 'utf8'), 'temporal-cli-example').map((e) => [
    e.name,
    e.script,
  ]),
);
// The examples name the default task queue (and its -batch queue): the worker polls exactly those.
const c = testClients({ TEMPORAL_TASK_QUEUE: 'fresh-badges' });
const { address, bundlePath } = sharedTestServer();
let worker: ChildProcess;
let temporal: Awaited<ReturnType<typeof temporalClient>>;

/** An operator's shell pointed at the test server: no other TEMPORAL_* setting leaks in. */
function cliEnv(): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TEMPORAL_')));
  return {
    ...env,
    TEMPORAL_ADDRESS: address,
    TEMPORAL_NAMESPACE: 'default',
    PATH: `${path.dirname(findTemporalCli())}${path.delimiter}${process.env.PATH}`,
  };
}

/** Runs one example as a whole (`set -e`, pipefail), exactly as the docs have it. */
function runExample(name: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const script = examples.get(name);
  if (!script) throw new Error(`docs/operations.md has no temporal-cli-example: ${name}`);
  return new Promise((resolve) => {
    const child = spawn('bash', ['-e', '-o', 'pipefail', '-c', script], { cwd: ROOT, env: cliEnv() });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 100_000);
    child.on('close', (code) => {
      // (after the pipes are read to their end: at 'exit' output may still be unread)
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs an example that starts a workflow; returns the run's id (from the CLI's output) after checking it completed. */
async function runToCompletion(name: string): Promise<{ id: string; stdout: string }> {
  const r = await runExample(name);
  expect(r.stderr, `${name}: stderr`).toBe('');
  expect(r.code, `${name}: exit code; stdout:\n${r.stdout}`).toBe(0);
  const id = /WorkflowId\s+(\S+)/.exec(r.stdout)?.[1];
  expect(id, `${name}: the started workflow's id in the output`).toBeTruthy();
  const described = await temporal.client.workflow.getHandle(id!).describe();
  expect(described.status.name).toBe('COMPLETED');
  // found by its kind like the runs `ops` starts (docs/operations.md, "Finding runs")
  expect(described.typedSearchAttributes.get(RUN_KIND)).toBe(kindOfWorkflowType(described.type));
  return { id: id!, stdout: r.stdout };
}

const schedulePaused = async () =>
  (await temporal.client.schedule.getHandle('fresh-badges-drain').describe()).state.paused;

async function drainRunning(): Promise<boolean> {
  for await (const _ of temporal.client.workflow.list({
    query: `WorkflowType = 'drainWorkflow' AND ExecutionStatus = 'Running' AND TaskQueue = 'fresh-badges'`,
  }))
    return true;
  return false;
}

beforeAll(async () => {
  await resetState(c);
  await seedCatalogue(c.pool, { skus: 60, fcs: 3, regions: 2, fcsPerRegion: 2, fcsPerSku: 2 });
  worker = spawnWorker(c.config, address, bundlePath);
  temporal = await temporalClient(address);
  await ensureSchedules(temporal.client, c.config, 1);
  // a drain running, for the pause to stop
  await temporal.client.schedule.getHandle('fresh-badges-drain').trigger();
  await eventually(drainRunning, 30_000, 'a drain started by the schedule');
});

afterAll(async () => {
  await deleteSchedules(temporal?.client, [...ALL_SCHEDULE_IDS, ...drainScheduleIds(1)]);
  for await (const wf of temporal.client.workflow.list({
    query: `ExecutionStatus = 'Running' AND TaskQueue = 'fresh-badges'`,
  }))
    await temporal.client.workflow
      .getHandle(wf.workflowId)
      .terminate('test done')
      .catch(() => undefined);
  worker?.kill('SIGTERM');
  if (worker) await exited(worker);
  await temporal?.close();
  await c.close();
});

describe('docs/operations.md: Starting runs from the Temporal CLI', () => {
  it('has an example for every operator workflow and for pausing and resuming the drain', () => {
    expect([...examples.keys()].sort()).toEqual(
      [
        'backfill',
        'dead-letters-retry',
        'dead-letters-discard',
        'export',
        'pause',
        'replay',
        'reshard',
        'resume',
        'sku-rebuild',
        'verify',
      ].sort(),
    );
  });

  it('pause: the schedule is paused and the running drain stops after its batch', async () => {
    const r = await runExample('pause');
    expect(r.code, r.stderr).toBe(0);
    expect(await schedulePaused()).toBe(true);
    // well before its 60 s interval is up: the stop signal reached it
    await eventually(async () => !(await drainRunning()), 20_000, 'the running drain to stop');
  });

  it('resume: the schedule is unpaused and a drain runs again', async () => {
    const r = await runExample('resume');
    expect(r.code, r.stderr).toBe(0);
    expect(await schedulePaused()).toBe(false);
    await eventually(drainRunning, 30_000, 'a drain triggered by the resume');
  });

  it('backfill completes; its progress query says done', async () => {
    const { stdout } = await runToCompletion('backfill');
    expect(stdout).toMatch(/"done":\s*true/);
    expect(stdout).toMatch(/"rows":\s*[1-9]/); // the seeded catalogue
  });

  it('replay from the start completes', async () => {
    const { stdout } = await runToCompletion('replay');
    expect(stdout).toMatch(/"done":\s*true/);
  });

  it('verify of a sample completes with its report', async () => {
    const { stdout } = await runToCompletion('verify');
    expect(stdout).toMatch(/"mismatches"/);
  });

  it("one SKU's rebuild completes", async () => {
    const { id } = await runToCompletion('sku-rebuild');
    expect(id).toBe('sku-rebuild-SKU-0000001');
  });

  it('dead-letter retry completes', async () => {
    const { stdout } = await runToCompletion('dead-letters-retry');
    expect(stdout).toMatch(/"retried":\s*0/);
  });

  it('dead-letter discard completes and says which asked-for letter was not waiting', async () => {
    const { stdout } = await runToCompletion('dead-letters-discard');
    expect(stdout).toMatch(/"notWaiting":\s*\[\s*"12"\s*\]/);
  });

  it('a re-split to the shard count in force completes as unchanged and is queryable', async () => {
    const { id, stdout } = await runToCompletion('reshard');
    expect(id).toBe('drain-reshard');
    expect(stdout).toMatch(/"phase":\s*"unchanged"/);
    expect((await temporal.client.workflow.getHandle(id).describe()).memo).toEqual({ shards: 1 });
  });

  it('the export of yesterday completes on the batch task queue', async () => {
    const { id } = await runToCompletion('export');
    expect((await temporal.client.workflow.getHandle(id).describe()).taskQueue).toBe('fresh-badges-batch');
  });
});
