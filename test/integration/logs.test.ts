/**
 * The processes' logs off a terminal (issue 24): the worker (the Temporal SDK's own lines and a
 * workflow's warning with its fields included), the read API and the simulator, each run as a
 * child process with stdout and stderr pipes, write one JSON object per line with level, time and
 * msg on both (warnings and errors on stderr). The simulator reports at most every 10 s.
 */
import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batchTaskQueue, names } from '../../config';
import { CatalogueSize, seedCatalogue } from '../../simulator/catalogue';
import { exportWorkflow } from '../../workflows';
import { eventually, resetState, sharedTestServer, temporalClient, testClients } from '../support/env';
import { childEnv, exited } from '../support/worker-process';
import { processLogLines } from '../support/log-lines';

const ROOT = path.resolve(__dirname, '..', '..');
const c = testClients({ TEMPORAL_TASK_QUEUE: `logs-${process.pid}` });
const { address, bundlePath } = sharedTestServer();
const size: CatalogueSize = { skus: 50, fcs: 4, regions: 2, fcsPerRegion: 2, fcsPerSku: 2 };

interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
}

/** A project entry point as a child process, its output collected (stdout a pipe: not a TTY). */
function run(script: string, args: string[], env: NodeJS.ProcessEnv): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: ROOT,
    env: { ...env, LOG_FORMAT: '', LOG_LEVEL: 'INFO' }, // the defaults: auto, INFO
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  return { child, stdout: () => out, stderr: () => err };
}

/** Every line the process wrote, parsed (test/support/log-lines.ts). */
const jsonLines = (p: Run) => processLogLines(p.stdout(), p.stderr());

beforeAll(async () => {
  await resetState(c);
  await seedCatalogue(c.pool, size);
});
afterAll(async () => {
  await c.close();
});

describe('logs off a terminal', () => {
  it('the simulator: JSON lines, its progress at most every 10 s', async () => {
    const sim = run('scripts/simulate.ts', ['--rate', '100', '--duration', '12', '--connections', '2'], {
      ...process.env,
      DATABASE_URL: c.config.DATABASE_URL,
    });
    await exited(sim.child);
    expect(sim.child.exitCode, sim.stderr()).toBe(0);
    const lines = jsonLines(sim);
    // 12 s of traffic: one report (at 10 s), then the summary
    const progress = lines.filter((l) => / changes in \d+ s /.test(String(l.msg)));
    expect(progress.length).toBe(1);
    expect(progress[0]).toMatchObject({ component: 'simulator', changes: expect.any(Number) });
    expect(lines.some((l) => /^done, \d+ changes/.test(String(l.msg)))).toBe(true);
  }, 60_000);

  it('the read API: JSON lines', async () => {
    const api = run('serving/main.ts', [], { ...childEnv(c.config, address), API_PORT: '0', API_HOST: '127.0.0.1' });
    try {
      const listening = await eventually(
        async () => /listening on (http:\/\/[\d.]+:\d+)/.exec(api.stdout())?.[1],
        30_000,
        'the API to listen',
      );
      // It listens before its Redis connection is up (and answers 503 until then, as while Redis
      // is down): healthy once connected.
      await eventually(async () => (await fetch(`${listening}/healthz`)).status === 200, 10_000, 'healthz 200');
    } finally {
      api.child.kill('SIGTERM');
      await exited(api.child);
    }
    expect(jsonLines(api).map((l) => l.component)).toContain('api');
  });

  it("the worker: its own lines, the Temporal SDK's and a workflow's warning, each one JSON line", async () => {
    const exportDir = fs.mkdtempSync(path.join(os.tmpdir(), 'logs-export-'));
    const worker = run('worker/main.ts', [], {
      ...childEnv(c.config, address),
      EXPORT_DIR: exportDir,
      WORKFLOW_BUNDLE: bundlePath,
      WORKER_METRICS_PORT: '0',
      BATCH_WORKER_NICE: '0',
    });
    const temporal = await temporalClient(address);
    try {
      await eventually(async () => /polling task queue/.test(worker.stdout()), 60_000, 'the worker to poll');
      // The nightly export of a day with nothing landed: the workflow warns (through the SDK's
      // runtime logger), with the reason as a field. (No drain runs here: the landing is made to
      // have caught up past that day, or the export would wait for it: activities/export.)
      await c.pool.query(
        `insert into pipeline.consumer_offsets (consumer, snap_from, snap_from_at) values ($1, '1:1:', now())
         on conflict (consumer) do update set snap_from_at = now()`,
        [names.landingConsumer],
      );
      const r = await temporal.client.workflow.execute(exportWorkflow, {
        taskQueue: batchTaskQueue(c.config),
        workflowId: `logs-export-${process.pid}`,
        args: [{}],
      });
      expect(r.skipped).toBeTruthy();
      await eventually(async () => /nothing to export/.test(worker.stderr()), 10_000, 'the warning');
    } finally {
      await temporal.close();
      worker.child.kill('SIGTERM');
      await exited(worker.child);
      fs.rmSync(exportDir, { recursive: true, force: true });
    }
    const lines = jsonLines(worker);
    expect(lines.find((l) => /polling task queue/.test(String(l.msg)))).toMatchObject({ component: 'worker' });
    // the SDK's own lines (worker state changes at INFO) come through the same logger
    expect(lines.some((l) => l.component === 'temporal' && l.sdkComponent === 'worker')).toBe(true);
    const warning = lines.find((l) => /nothing to export/.test(String(l.msg)));
    expect(warning).toMatchObject({
      level: 'warn',
      component: 'temporal',
      sdkComponent: 'workflow',
      reason: expect.stringContaining('no changes landed for'),
    });
  });
});
