/**
 * Dependency faults under traffic (issue 12): the real pipeline process (`scripts/start.ts`, what
 * `npm start` runs: read API + worker) talks to PostgreSQL and Redis through a TCP fault proxy and
 * to a Temporal dev server of this file's own (with a database file, so it can be killed and
 * restarted). Order-service traffic writes straight to PostgreSQL. Each fault is injected a third
 * of the way into the traffic and repaired; then the store must equal the SQL rule and reads be
 * fresh again, the process must still be alive, and the read API must not have failed one request
 * while Redis was reachable. Recovery times (last commit -> store equal to the rule) are printed;
 * `npm run chaos` runs this file with the slow faults too (CHAOS=1: a real PostgreSQL restart,
 * Temporal killed and restarted) and prints the table docs/operations.md reports.
 *
 * Times are reported, not asserted (benchmarks measure speed); the bound below only stops a test
 * that would otherwise wait forever.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batchTaskQueue, names } from '../../config';
import { compareSnapshots } from '../../reconcile/compare';
import { sourceFeatures } from '../../reconcile/source-features';
import { storeFeatures } from '../../reconcile/store-features';
import { ALL_SCHEDULE_IDS, captureScheduleIds } from '../../scripts/lib/schedules';
import { DATA_DIR, DevServer, processAlive, startDevServer, temporalAnswers } from '../../scripts/lib/temporal-server';
import { CatalogueSize, seedCatalogue } from '../../simulator/catalogue';
import { runTraffic } from '../../simulator/traffic';
import { deleteSchedules, eventually, resetState, sharedTestServer, temporalClient, testClients } from '../support/env';
import { FaultProxy, startFaultProxy } from '../support/fault-proxy';
import { freePort } from '../support/redis-process';
import { childEnv, exited, workerRoleUrl } from '../support/worker-process';
import { processLogLines } from '../support/log-lines';
import { SEARCH_ATTRIBUTE_KEYS } from '../../workflows/search-attributes';
import { LOGICAL_RUN, trafficTarget, useProductCapture } from '../support/logical-run';

const CHAOS = process.env.CHAOS === '1';
const RECOVERY_BOUND_MS = 90_000;
const ROOT = path.resolve(__dirname, '..', '..');
const size: CatalogueSize = { skus: 300, fcs: 4, regions: 2, fcsPerRegion: 2, fcsPerSku: 2 };
const taskQueue = `faults-${process.pid}`;
const c = testClients({ TEMPORAL_TASK_QUEUE: taskQueue, STALE_AFTER_MS: '2000' });
const { bundlePath } = sharedTestServer();
const results: { fault: string; recoveryMs: number; apiFailures: number; apiRequests: number }[] = [];

let pgProxy: FaultProxy;
let redisProxy: FaultProxy;
let temporal: DevServer;
let temporalPort: number;
let temporalDb: string;
let pipeline: ChildProcess;
/** What the current pipeline process wrote (its batch worker's lines included: inherited stdio). */
const pipelineOutput = { stdout: '', stderr: '' };
let apiPort: number;
let metricsPort: number;

function viaProxy(url: string, port: number): string {
  const u = new URL(url);
  u.hostname = '127.0.0.1';
  u.port = String(port);
  return u.toString();
}

async function startTemporal(): Promise<DevServer> {
  return startDevServer({
    port: temporalPort,
    uiPort: null,
    namespace: 'default',
    dbFile: temporalDb,
    // one per test database: the default and logical runs run side by side
    logFile: path.join(DATA_DIR, 'test', `temporal-faults-${new URL(c.config.DATABASE_URL).pathname.slice(1)}.log`),
    // none registered at start, as on a self-hosted server: the pipeline adds them (its first
    // start; a restarted server keeps them in its database file)
    searchAttributes: false,
  });
}

/** `npm start`'s entry point, pointed at the proxies and this file's Temporal. */
function startPipeline(): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/start.ts'], {
    cwd: ROOT,
    env: {
      ...childEnv(c.config, temporal.address),
      DATABASE_URL: viaProxy(workerRoleUrl(c.config.DATABASE_URL), pgProxy.port), // the least-privilege role
      REDIS_URL: viaProxy(c.config.REDIS_URL, redisProxy.port),
      // the logical run's source databases, on the same server: through the proxy too, so a cut
      // or a slow PostgreSQL reaches the capture as a real server's would
      ...(c.config.CAPTURE_MODE === 'logical'
        ? {
            INVENTORY_DATABASE_URL: viaProxy(c.config.INVENTORY_DATABASE_URL, pgProxy.port),
            ORDERS_DATABASE_URL: viaProxy(c.config.ORDERS_DATABASE_URL, pgProxy.port),
          }
        : {}),
      API_HOST: '127.0.0.1',
      API_PORT: String(apiPort),
      WORKER_METRICS_PORT: String(metricsPort),
      BATCH_WORKER_METRICS_PORT: '0',
      WORKFLOW_BUNDLE: bundlePath,
      DRAIN_INTERVAL_MS: '60000',
      VERIFY_INTERVAL_MS: '86400000',
      LOG_LEVEL: 'INFO', // (stdout is only parsed; warnings and errors show, from stderr)
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  pipelineOutput.stdout = pipelineOutput.stderr = '';
  child.stdout?.on('data', (d) => (pipelineOutput.stdout += d));
  child.stderr?.on('data', (d) => {
    pipelineOutput.stderr += d;
    process.stderr.write(`[pipeline ${child.pid}] ${d}`);
  });
  return child;
}

/** The custom search attributes this file's Temporal server knows. */
async function customSearchAttributes(): Promise<string[]> {
  const t = await temporalClient(temporal.address);
  try {
    const r = await t.client.connection.operatorService.listSearchAttributes({ namespace: 'default' });
    return Object.keys(r.customAttributes ?? {});
  } finally {
    await t.close();
  }
}

async function apiAnswers(): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${apiPort}/healthz`)).status === 200;
  } catch {
    return false;
  }
}

/** Pids of the live processes polling a task queue for activities (worker identity is pid@host). */
async function pollerPids(queue: string): Promise<number[]> {
  const t = await temporalClient(temporal.address);
  try {
    const r = await t.client.workflowService.describeTaskQueue({
      namespace: 'default',
      taskQueue: { name: queue },
      taskQueueType: 2 /* TASK_QUEUE_TYPE_ACTIVITY */,
    });
    const pids = (r.pollers ?? []).map((p) => Number(String(p.identity).split('@')[0]));
    return [...new Set(pids)].filter(processAlive);
  } finally {
    await t.close();
  }
}

/** True once the store equals the rule and reads are fresh; otherwise throws saying which is not so. */
async function recovered(): Promise<true> {
  const diff = compareSnapshots(await sourceFeatures(c.pool), await storeFeatures(c.redis, c.keys));
  if (diff.length) throw new Error(`${diff.length} features differ from the rule, first ${JSON.stringify(diff[0])}`);
  if (!(await fresh())) throw new Error('the store equals the rule but reads answer stale');
  return true;
}
const fresh = async () => {
  const r = await fetch(`http://127.0.0.1:${apiPort}/v1/badges?region=R-00&skus=SKU-0000001`).catch(() => null);
  return r?.status === 200 && ((await r.json()) as { stale: boolean }).stale === false;
};

/** Reads the API every 25 ms while `during` runs; counts failed answers (not 200). */
async function watchReads<T>(during: () => Promise<T>): Promise<{ value: T; failures: number; requests: number }> {
  let stop = false;
  let failures = 0;
  let requests = 0;
  const loop = (async () => {
    while (!stop) {
      requests++;
      const r = await fetch(`http://127.0.0.1:${apiPort}/v1/badges?region=R-00&skus=SKU-0000001,SKU-0000002`).catch(
        () => null,
      );
      if (r?.status !== 200) failures++;
      await r?.arrayBuffer().catch(() => undefined);
      await sleep(25);
    }
  })();
  try {
    const value = await during();
    return { value, failures, requests };
  } finally {
    stop = true;
    await loop;
  }
}

/**
 * Traffic for 4.5 s; the fault at 1.5 s, repaired `faultMs` later; then waits for the store to
 * equal the rule and reads to be fresh, and records how long that took after the last commit.
 */
async function underTraffic(
  fault: string,
  seed: number,
  inject: () => Promise<void>,
  repair: () => Promise<void>,
  opts: { faultMs?: number; readsMustSucceed?: boolean } = {},
): Promise<void> {
  const watched = await watchReads(async () => {
    const traffic = runTraffic(trafficTarget(c.pool), { rate: 400, durationMs: 4500, connections: 4, seed, size });
    await sleep(1500);
    await inject();
    await sleep(opts.faultMs ?? 2000);
    await repair();
    const stats = await traffic;
    expect(stats.changes).toBeGreaterThan(500);
    return Date.now();
  });
  const lastCommit = watched.value;
  await eventually(recovered, RECOVERY_BOUND_MS, `the store to equal the rule after: ${fault}`);
  const recoveryMs = Date.now() - lastCommit;
  results.push({ fault, recoveryMs, apiFailures: watched.failures, apiRequests: watched.requests });
  console.log(
    `[faults] ${fault}: store equal to the rule and reads fresh ${recoveryMs} ms after the last commit; reads: ${watched.failures} failed of ${watched.requests}`,
  );
  expect(pipeline.exitCode).toBeNull(); // no fault kills the process
  expect(pipeline.signalCode).toBeNull();
  if (opts.readsMustSucceed !== false) expect(watched.failures).toBe(0);
}

beforeAll(async () => {
  await resetState(c);
  await useProductCapture(c); // the logical run: `npm start`'s capture workflows capture
  pgProxy = await startFaultProxy({ host: '127.0.0.1', port: Number(new URL(c.config.DATABASE_URL).port || 5432) });
  redisProxy = await startFaultProxy({ host: '127.0.0.1', port: Number(new URL(c.config.REDIS_URL).port || 6379) });
  temporalDb = path.join(DATA_DIR, 'test', `temporal-faults-${process.pid}.db`);
  // a free port may be taken before the server binds it (the logical run runs beside this one):
  // another port (restarts below keep the one it started on: the pipeline is pointed at it)
  for (let attempt = 1; ; attempt++) {
    temporalPort = await freePort();
    fs.rmSync(temporalDb, { force: true });
    try {
      temporal = await startTemporal();
      break;
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
  // none of the pipeline's yet: its start adds them (a case below)
  const ours = SEARCH_ATTRIBUTE_KEYS.map((k) => k.name);
  expect((await customSearchAttributes()).filter((n) => ours.includes(n))).toEqual([]);
  apiPort = await freePort();
  metricsPort = await freePort();
  await seedCatalogue(c.pool, size);
  pipeline = startPipeline();
  await eventually(apiAnswers, 60_000, 'the pipeline to start');
  await eventually(recovered, 60_000, 'the initial drain');
});

afterAll(async () => {
  if (results.length)
    console.log(
      `[faults] summary\n${results.map((r) => `  ${r.fault.padEnd(60)} ${String(r.recoveryMs).padStart(6)} ms   reads failed ${r.apiFailures}/${r.apiRequests}`).join('\n')}`,
    );
  if (pipeline && pipeline.exitCode === null) {
    pipeline.kill('SIGTERM');
    await exited(pipeline);
  }
  if (temporal && (await temporalAnswers(temporal.address).catch(() => false))) {
    const t = await temporalClient(temporal.address);
    await deleteSchedules(t.client, [...ALL_SCHEDULE_IDS, ...captureScheduleIds(c.config)]);
    await t.close();
  }
  await temporal?.stop().catch(() => undefined);
  fs.rmSync(temporalDb, { force: true });
  await pgProxy?.close();
  await redisProxy?.close();
  await c.close();
});

// The logical run (test/support/logical-run.ts) takes the faults that reach capture or the sources;
// the others (it.skipIf) are the same with either capture, and `.ci/run` has a time limit.
describe('dependency faults under traffic', () => {
  it('PostgreSQL connections cut for 2 s (a restart, seen from the worker)', async () => {
    const health: { api?: { status: number; body: any }; worker?: { status: number; body: any } } = {};
    await underTraffic(
      'PostgreSQL cut 2 s',
      31,
      async () => {
        pgProxy.cut();
        await sleep(300);
        // Each dependency on its own: the API stays healthy (reads need Redis only), the worker not.
        const api = await fetch(`http://127.0.0.1:${apiPort}/healthz`);
        health.api = { status: api.status, body: await api.json() };
        const worker = await fetch(`http://127.0.0.1:${metricsPort}/healthz`);
        health.worker = { status: worker.status, body: await worker.json() };
      },
      async () => pgProxy.heal(),
    );
    expect(health.api).toMatchObject({
      status: 200,
      body: {
        status: 'degraded',
        dependencies: { redis: { status: 'up' }, postgres: { status: 'down' }, temporal: { status: 'up' } },
      },
    });
    expect(health.worker).toMatchObject({
      status: 503,
      body: { dependencies: { redis: { status: 'up' }, postgres: { status: 'down' }, temporal: { status: 'up' } } },
    });
    // healthy again once its pool reaches PostgreSQL through the healed proxy
    await eventually(
      async () => (await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).status === 200,
      15_000,
      'the worker healthy again',
    );
  });

  it('PostgreSQL 200 ms slower for 2 s', async () => {
    await underTraffic(
      'PostgreSQL +200 ms latency 2 s',
      32,
      async () => pgProxy.latency(200),
      async () => pgProxy.heal(),
    );
  });

  it.skipIf(LOGICAL_RUN)('Redis connections cut for 2 s (reads answer 503 meanwhile, then recover)', async () => {
    await underTraffic(
      'Redis cut 2 s',
      33,
      async () => redisProxy.cut(),
      async () => redisProxy.heal(),
      { readsMustSucceed: false },
    );
  });

  it.skipIf(LOGICAL_RUN)('Redis 50 ms slower for 2 s (reads slower, none failed)', async () => {
    await underTraffic(
      'Redis +50 ms latency 2 s',
      39,
      async () => redisProxy.latency(50),
      async () => redisProxy.heal(),
    );
  });

  it('Redis restarted empty: stale, rebuilt by backfill-auto, equal again', async () => {
    await underTraffic(
      'Redis restarted empty',
      34,
      async () => {
        redisProxy.cut();
        await c.redis.flushdb();
      },
      async () => redisProxy.heal(),
      { faultMs: 500, readsMustSucceed: false },
    );
  });

  it.skipIf(LOGICAL_RUN)('the pipeline registered its search attributes on a server that had none', async () => {
    expect(await customSearchAttributes()).toEqual(expect.arrayContaining(SEARCH_ATTRIBUTE_KEYS.map((k) => k.name)));
    const t = await temporalClient(temporal.address);
    try {
      // and its runs carry them: the drain's kind, searchable
      let drains = 0;
      for await (const _ of t.client.workflow.list({ query: `FreshBadgesKind = 'drain'` })) drains++;
      expect(drains).toBeGreaterThan(0);
    } finally {
      await t.close();
    }
  });

  it.skipIf(LOGICAL_RUN)(
    'landing and the export run in a second worker process (batch task queue), not beside the drain',
    async () => {
      const found = (pids: number[]) => (pids.length ? pids : null);
      const pipelinePids = await eventually(
        async () => found((await pollerPids(taskQueue)).filter((pid) => pid === pipeline.pid)),
        30_000,
        'the drain worker to poll',
      );
      const batchPids = await eventually(
        async () => found((await pollerPids(batchTaskQueue(c.config))).filter((pid) => pid !== pipeline.pid)),
        30_000,
        'the batch worker to poll',
      );
      expect(pipelinePids).toEqual([pipeline.pid]);
      expect(await pollerPids(batchTaskQueue(c.config))).not.toContain(pipeline.pid);
      expect(batchPids.length).toBe(1);
      // A landing run (the schedule, triggered now) completes there.
      const t = await temporalClient(temporal.address);
      try {
        const since = new Date().toISOString();
        await t.client.schedule.getHandle(names.landingScheduleId).trigger();
        await eventually(
          async () => {
            // Closed after the trigger: a run already going (the schedule skips overlaps; after the
            // faults above it may be in a retry's backoff) counts once it completes.
            for await (const w of t.client.workflow.list({
              query: `WorkflowType = 'landingWorkflow' AND ExecutionStatus = 'Completed' AND CloseTime > '${since}'`,
            }))
              return w.taskQueue === batchTaskQueue(c.config);
            return false;
          },
          120_000,
          'a landing run on the batch task queue',
        );
      } finally {
        await t.close();
      }
    },
  );

  it('the pipeline process SIGKILLed mid-batch and started again', async () => {
    let batchPids: number[] = [];
    await underTraffic(
      'worker + API SIGKILL, started again',
      35,
      async () => {
        batchPids = (await pollerPids(batchTaskQueue(c.config))).filter((pid) => pid !== pipeline.pid);
        pipeline.kill('SIGKILL');
        await exited(pipeline);
        // The batch worker goes with it (its stdin closes): no orphan keeps polling.
        await eventually(
          async () => batchPids.every((pid) => !processAlive(pid)),
          20_000,
          'the batch worker to exit with its parent',
        );
      },
      async () => {
        pipeline = startPipeline();
        await eventually(apiAnswers, 30_000, 'the pipeline to come back');
      },
      { faultMs: 200, readsMustSucceed: false },
    );
  });

  it('SIGTERM: finishes the batch in flight and in-flight requests, exits 0', async () => {
    const traffic = runTraffic(trafficTarget(c.pool), { rate: 400, durationMs: 1500, connections: 2, seed: 36, size });
    await sleep(700);
    const t0 = Date.now();
    pipeline.kill('SIGTERM');
    await exited(pipeline);
    const stopMs = Date.now() - t0;
    console.log(`[faults] SIGTERM: exited with ${pipeline.exitCode} after ${stopMs} ms`);
    expect(pipeline.exitCode).toBe(0);
    // npm start's logs, off a terminal: JSON lines, its own, the worker's and the SDK's
    const lines = processLogLines(pipelineOutput.stdout, pipelineOutput.stderr);
    const components = new Set(lines.map((l) => l.component));
    for (const c of ['start', 'worker', 'temporal']) expect(components).toContain(c);
    expect(lines.some((l) => l.component === 'start' && /SIGTERM: finishing/.test(String(l.msg)))).toBe(true);
    await traffic;
    pipeline = startPipeline();
    await eventually(apiAnswers, 30_000, 'the pipeline to come back');
    await eventually(recovered, RECOVERY_BOUND_MS, 'the store to equal the rule after SIGTERM');
  });

  it.runIf(CHAOS)('Temporal dev server SIGKILLed and restarted (chaos)', async () => {
    await underTraffic(
      'Temporal SIGKILL, restarted',
      37,
      async () => {
        process.kill(temporal.pid, 'SIGKILL');
      },
      async () => {
        temporal = await startTemporal();
      },
      { faultMs: 1000 },
    );
  });

  it.runIf(CHAOS && process.getuid?.() === 0)('PostgreSQL restarted for real (chaos: pg_ctlcluster)', async () => {
    const cluster = execFileSync('pg_lsclusters', ['-h']).toString().trim().split('\n')[0].split(/\s+/);
    await underTraffic(
      'PostgreSQL restart (pg_ctlcluster)',
      38,
      async () => {
        execFileSync('pg_ctlcluster', [cluster[0], cluster[1], 'restart', '-m', 'fast']);
      },
      async () => undefined,
      { faultMs: 0 },
    );
  });
});
