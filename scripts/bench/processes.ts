/** Starting the pipeline's real processes for a benchmark: a Node entry point, ready when its log says so. */
import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Client, Connection, ScheduleHandle, ScheduleOverlapPolicy } from '@temporalio/client';
import { Config } from '../../config';
import { buildWorkflowBundle } from '../../worker/workflow-bundle';
import { ensureSchedules, triggerCaptures } from '../lib/schedules';
import { drainScheduleIdOf, drainShard, drainShards } from '../../outbox';
import { DATA_DIR, startDevServer } from '../lib/temporal-server';
import { PIPELINE_WORKER_NODE_FLAGS } from '../../worker/node-flags';

const ROOT = path.resolve(__dirname, '..', '..');

export function spawnNode(
  script: string,
  env: Record<string, string>,
  ready: RegExp,
  flags: string[] = [],
): Promise<ChildProcess> {
  // BENCH_NODE_ARGS: extra Node flags for the pipeline's processes (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
  const extra = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...flags, ...extra, '--import', 'tsx', script], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // BENCH_CHILD_LOG_DIR: each process's stdout also into <dir>/<script>.<pid>.log (e.g. with --trace-gc).
  const logDir = process.env.BENCH_CHILD_LOG_DIR;
  if (logDir) child.stdout!.pipe(fs.createWriteStream(path.join(logDir, `${path.basename(script)}.${child.pid}.log`)));
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer) => ready.test(String(d)) && resolve(child);
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d) => process.stderr.write(`[${path.basename(script)}] ${d}`));
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
  });
}

/** The pipeline as `npm start` runs it, for a benchmark: Temporal dev server, the two workers, the API. */
export interface BenchPipeline {
  apiPort: number;
  temporal: Client;
  /** The drain's schedule (triggered once at start). */
  schedule: ScheduleHandle;
  /** The process ids of the worker (drain, and capture from the WAL), the batch worker, the read API and Temporal. */
  pids: { worker: number; batchWorker: number; api: number; temporal: number };
  stop(): Promise<void>;
}

/**
 * Starts the real parts on the benchmark's configuration (its database, its Redis or Redis
 * Cluster): a Temporal dev server, a worker process for the drain and one for landing/export (as
 * `npm start`), the read API process; creates the schedules and triggers the drain (and, with
 * CAPTURE_MODE=logical, the capture of each source).
 */
export async function startBenchPipeline(config: Config, shards = 1): Promise<BenchPipeline> {
  const bundle = path.join(DATA_DIR, 'bench', 'workflow-bundle.js');
  await buildWorkflowBundle(bundle);
  const server = await startDevServer({
    port: 17_233 + Math.floor(Math.random() * 500),
    uiPort: null,
    namespace: 'default',
    dbFile: null,
    logFile: path.join(DATA_DIR, 'bench', 'temporal.log'),
  });
  const children: ChildProcess[] = [];
  const stop = async () => {
    // each child finishes its running activities (a worker's graceful shutdown); SIGKILL after 10 s
    await Promise.all(
      children.map(async (c) => {
        if (c.exitCode !== null || c.signalCode !== null) return;
        const exited = new Promise((resolve) => c.once('exit', resolve));
        c.kill('SIGTERM');
        // (a profiled run gets longer: its profile is written on a graceful exit only)
        const late = setTimeout(() => c.kill('SIGKILL'), process.env.BENCH_NODE_ARGS ? 60_000 : 10_000);
        await exited;
        clearTimeout(late);
      }),
    );
    await server.stop();
  };
  try {
    const apiPort = 18_800 + Math.floor(Math.random() * 500);
    const env = pipelineEnv(config, shards, { temporalAddress: server.address, apiPort, bundle });
    // Two worker processes, as `npm start` runs them: the drain's, and landing/export's.
    children.push(
      await spawnNode(
        'worker/main.ts',
        { ...env, WORKER_TASK_QUEUES: 'pipeline' },
        /polling task queue/,
        PIPELINE_WORKER_NODE_FLAGS, // as npm start runs it
      ),
    );
    children.push(await spawnNode('worker/main.ts', { ...env, WORKER_TASK_QUEUES: 'batch' }, /polling task queue/));
    children.push(await spawnNode('serving/main.ts', env, /listening/));
    const connection = await Connection.connect({ address: server.address });
    const temporal = new Client({ connection });
    // one drain schedule per shard of the layout in force (`shards`), each triggered now
    await ensureSchedules(temporal, { ...config, TEMPORAL_TASK_QUEUE: 'bench' }, shards);
    const schedule = temporal.schedule.getHandle(drainScheduleIdOf(drainShard(0, shards)));
    for (const s of drainShards(shards))
      await temporal.schedule.getHandle(drainScheduleIdOf(s)).trigger(ScheduleOverlapPolicy.SKIP);
    await triggerCaptures(temporal, config);
    const [worker, batchWorker, api] = children.map((c) => c.pid!);
    return {
      apiPort,
      temporal,
      schedule,
      pids: { worker: worker!, batchWorker: batchWorker!, api: api!, temporal: server.pid },
      stop,
    };
  } catch (err) {
    console.error(`bench: the pipeline did not start: ${(err as Error).stack}`);
    await stop();
    throw err;
  }
}

/** The environment of the pipeline's processes in a benchmark, from the benchmark's configuration. */
function pipelineEnv(
  config: Config,
  shards: number,
  at: { temporalAddress: string; apiPort: number; bundle: string },
): Record<string, string> {
  return {
    DATABASE_URL: config.DATABASE_URL,
    REDIS_URL: config.REDIS_URL,
    REDIS_CLUSTER_NODES: config.REDIS_CLUSTER_NODES,
    STORE_PARTITIONS: String(config.STORE_PARTITIONS),
    DRAIN_SHARDS: String(shards),
    REDIS_PREFIX: config.REDIS_PREFIX,
    CAPTURE_MODE: config.CAPTURE_MODE,
    INVENTORY_DATABASE_URL: config.INVENTORY_DATABASE_URL,
    ORDERS_DATABASE_URL: config.ORDERS_DATABASE_URL,
    CAPTURE_TICK_MS: String(config.CAPTURE_TICK_MS),
    TEMPORAL_ADDRESS: at.temporalAddress,
    TEMPORAL_TASK_QUEUE: 'bench',
    API_PORT: String(at.apiPort),
    WORKER_METRICS_PORT: '0',
    // INFO: the start waits for the worker's "polling task queue" line (stdout is read, not shown)
    LOG_LEVEL: 'INFO',
    EXPORT_DIR: path.join(DATA_DIR, 'bench', 'export'),
    WORKFLOW_BUNDLE: at.bundle,
  };
}
