/**
 * `npm run bench:soak`: the pipeline left running under steady traffic (default 30 minutes at
 * 1,000 changes/s) with compaction on, sampled every minute: the worker's RSS, Redis
 * `used_memory`, outbox rows, the drain run's Temporal history length and the lag. What a soak
 * must show is that none of them grows with time: memory flat, the outbox bounded by compaction
 * (retention shortened to --retention-min so a 30-minute run prunes), history bounded by the
 * drain's continue-as-new each interval.
 * Uses the benchmark's database (fresh_badges_bench), Redis db 14 and its own Temporal server.
 */
import { FIELD } from '../../store/names';
import { setTimeout as sleep } from 'node:timers/promises';
import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Client, Connection, ScheduleOverlapPolicy } from '@temporalio/client';
import { Command } from 'commander';
import { names } from '../../config';
import { CatalogueSize } from '../../simulator/catalogue';
import { runTraffic } from '../../simulator/traffic';
import { compactionWorkflow } from '../../workflows';
import { buildWorkflowBundle } from '../../worker/workflow-bundle';
import { positiveInt } from '../lib/cli-args';
import { ensureSchedules } from '../lib/schedules';
import { DATA_DIR, DevServer, startDevServer } from '../lib/temporal-server';
import { Bench, benchConfig, ensureCatalogue, openBench } from './bench-env';
import { spawnNode } from './processes';
import { PIPELINE_WORKER_NODE_FLAGS } from '../../worker/node-flags';
import { int, table } from './stats';

const log = (s: string) => console.log(`[soak ${new Date().toISOString().slice(11, 19)}] ${s}`);

function rssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

interface Options {
  minutes: number;
  rate: number;
  skus: number;
  retentionMin: number;
}

function parseOptions(): Options {
  return new Command()
    .name('npm run bench:soak --')
    .option('--minutes <n>', 'how long traffic flows', positiveInt('--minutes'), 30)
    .option('--rate <changes/s>', 'traffic rate', positiveInt('--rate'), 1000)
    .option('--skus <n>', 'catalogue size', positiveInt('--skus'), 100_000)
    .option('--retention-min <n>', "outbox retention for the soak's compaction runs", positiveInt('--retention-min'), 5)
    .parse()
    .opts<Options>();
}

/** What main stops at the end, as far as it has started: the worker processes and the Temporal server. */
interface Started {
  children: ChildProcess[];
  server?: DevServer;
}

/** The running pipeline the soak samples: its database and store, Temporal, the two worker processes. */
interface Soak {
  b: Bench;
  temporal: Client;
  worker: ChildProcess;
  batchWorker: ChildProcess;
}

/** A Temporal dev server of the soak's own, and a workflow bundle of the current code. */
async function startServer(started: Started): Promise<{ server: DevServer; bundle: string }> {
  const bundle = path.join(DATA_DIR, 'bench', 'workflow-bundle.js');
  await buildWorkflowBundle(bundle);
  const port = 17_800 + Math.floor(Math.random() * 400);
  const server = await startDevServer({
    port,
    uiPort: null,
    namespace: 'default',
    dbFile: null,
    logFile: path.join(DATA_DIR, 'bench', 'temporal-soak.log'),
  });
  started.server = server;
  return { server, bundle };
}

/** Two worker processes, as `npm start` runs them: the drain's, and landing/export's. */
async function startWorkers(b: Bench, server: DevServer, bundle: string, started: Started) {
  const env = {
    DATABASE_URL: b.config.DATABASE_URL,
    REDIS_URL: b.config.REDIS_URL,
    REDIS_PREFIX: b.config.REDIS_PREFIX,
    TEMPORAL_ADDRESS: server.address,
    TEMPORAL_TASK_QUEUE: 'soak',
    WORKER_METRICS_PORT: '0',
    // INFO: the start waits for the worker's "polling task queue" line (stdout is read, not shown)
    LOG_LEVEL: 'INFO',
    VERIFY_INTERVAL_MS: '300000',
    EXPORT_DIR: path.join(DATA_DIR, 'bench', 'export'),
    WORKFLOW_BUNDLE: bundle,
  };
  const worker = await spawnNode(
    'worker/main.ts',
    { ...env, WORKER_TASK_QUEUES: 'pipeline' },
    /polling task queue/,
    PIPELINE_WORKER_NODE_FLAGS,
  );
  const batchWorker = await spawnNode('worker/main.ts', { ...env, WORKER_TASK_QUEUES: 'batch' }, /polling task queue/);
  started.children.push(worker, batchWorker);
  return { worker, batchWorker };
}

/** The pipeline started (server, workers, schedules) and the drain triggered. */
async function startSoak(b: Bench, started: Started): Promise<Soak> {
  const { server, bundle } = await startServer(started);
  const workers = await startWorkers(b, server, bundle, started);
  const connection = await Connection.connect({ address: server.address });
  const temporal = new Client({ connection });
  await ensureSchedules(temporal, b.config);
  await temporal.schedule.getHandle(names.drainScheduleId).trigger(ScheduleOverlapPolicy.SKIP);
  return { b, temporal, ...workers };
}

/** The running drain workflow's history length (0 if none runs). */
async function drainHistory(temporal: Client): Promise<number> {
  for await (const w of temporal.workflow.list({
    query: `WorkflowType = 'drainWorkflow' AND ExecutionStatus = 'Running'`,
  }))
    return (await temporal.workflow.getHandle(w.workflowId, w.runId).describe()).historyLength;
  return 0;
}

interface Sample {
  minute: number;
  rssMb: number;
  batchRssMb: number;
  redisMb: number;
  outbox: number;
  history: number;
  lagMs: number;
}

async function takeSample({ b, temporal, worker, batchWorker }: Soak, minute: number): Promise<Sample> {
  const [outbox, info, history, meta] = await Promise.all([
    b.pool.query(`select count(*)::int as n from pipeline.outbox`),
    b.redis.info('memory'),
    drainHistory(temporal),
    b.redis.hget(b.keys.partitions[0].meta, FIELD.caughtUpAt),
  ]);
  const usedMb = Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0) / 1024 / 1024;
  return {
    minute,
    rssMb: rssMb(worker.pid!),
    batchRssMb: rssMb(batchWorker.pid!),
    redisMb: usedMb,
    outbox: outbox.rows[0].n as number,
    history,
    lagMs: meta ? Date.now() - Number(meta) : NaN,
  };
}

/** One minute of the soak: wait it out, run a compaction, take and log a sample. */
async function soakMinute(soak: Soak, retentionMin: number, minute: number): Promise<Sample> {
  await sleep(60_000);
  await soak.temporal.workflow
    .execute(compactionWorkflow, {
      taskQueue: 'soak',
      workflowId: `soak-compaction-${minute}`,
      args: [{ retentionMs: retentionMin * 60_000 }],
    })
    .catch((err) => log(`compaction failed: ${err.message}`));
  const s = await takeSample(soak, minute);
  log(
    `minute ${minute}: worker RSS ${s.rssMb.toFixed(0)} MB (batch worker ${s.batchRssMb.toFixed(0)} MB), Redis ${s.redisMb.toFixed(1)} MB, outbox ${int(s.outbox)} rows, drain history ${s.history} events, lag ${int(s.lagMs)} ms`,
  );
  return s;
}

/** Traffic at --rate for --minutes, sampled before it starts and after each minute; returns the samples and changes written. */
async function runSoak(soak: Soak, o: Options, size: CatalogueSize): Promise<{ samples: Sample[]; changes: number }> {
  log(
    `traffic: ${o.rate} changes/s for ${o.minutes} min; compaction every minute with ${o.retentionMin} min retention`,
  );
  const samples = [await takeSample(soak, 0)];
  const traffic = runTraffic(soak.b.pool, {
    rate: o.rate,
    durationMs: o.minutes * 60_000,
    connections: 4,
    seed: 99,
    size,
  });
  let changes = 0;
  void traffic.then((s) => (changes = s.changes));
  for (let minute = 1; minute <= o.minutes; minute++) samples.push(await soakMinute(soak, o.retentionMin, minute));
  await traffic;
  return { samples, changes };
}

function printReport(o: Options, samples: Sample[], changes: number): void {
  const rows = samples
    .filter((s) => s.minute % 5 === 0 || s.minute === o.minutes)
    .map((s) => [
      s.minute,
      s.rssMb.toFixed(0),
      s.batchRssMb.toFixed(0),
      s.redisMb.toFixed(1),
      int(s.outbox),
      s.history,
      int(s.lagMs),
    ]);
  console.log(
    `\nSoak: ${o.minutes} min at ${o.rate} changes/s (${int(changes)} changes), ${int(o.skus)} SKUs, compaction every minute (retention ${o.retentionMin} min)\n`,
  );
  console.log(
    table(
      [
        'minute',
        'worker RSS MB',
        'batch worker RSS MB',
        'Redis used MB',
        'outbox rows',
        'drain history events',
        'lag ms',
      ],
      rows,
    ),
  );
  const after = samples.filter((s) => s.minute >= Math.min(10, o.minutes));
  const range = (f: (s: Sample) => number) =>
    `${Math.min(...after.map(f)).toFixed(1)}–${Math.max(...after.map(f)).toFixed(1)}`;
  console.log(
    `\nfrom minute ${after[0].minute} on: worker RSS ${range((s) => s.rssMb)} MB, batch worker ${range((s) => s.batchRssMb)} MB, Redis ${range((s) => s.redisMb)} MB, outbox ${range((s) => s.outbox)} rows, history ≤ ${Math.max(...samples.map((s) => s.history))} events`,
  );
}

async function main(): Promise<void> {
  const o = parseOptions();
  const size: CatalogueSize = { skus: o.skus, fcs: 12, regions: 6, fcsPerRegion: 3, fcsPerSku: 3 };
  const b = await openBench(benchConfig({ TEMPORAL_TASK_QUEUE: 'soak' }));
  const started: Started = { children: [] };
  try {
    await ensureCatalogue(b, size, log);
    await b.pool.query('analyze');
    const soak = await startSoak(b, started);
    const { samples, changes } = await runSoak(soak, o, size);
    printReport(o, samples, changes);
    await soak.temporal.connection.close();
  } finally {
    for (const c of started.children) c.kill('SIGTERM');
    await started.server?.stop();
    await b.close();
  }
}

main().catch((err) => {
  console.error(`soak: ${err.message}`);
  process.exit(1);
});
