/**
 * The worker process: `npm run worker` (or inside `npm start`). Connects to Postgres, Redis and
 * Temporal, then runs workflows and activities on its task queues until SIGINT/SIGTERM.
 *
 * WORKER_TASK_QUEUES picks the queues: `pipeline` (the drain and everything latency-sensitive),
 * `batch` (landing and the nightly export) or `all`. The two kinds of work are split because on a
 * small machine the minute's Parquet landing (hundreds of thousands of rows read, converted and
 * written) held the drain's event loop for seconds; in a process of its own, at a lower priority,
 * it only takes CPU the drain does not need.
 */
import { holdWaiting } from '../activities/dead-letters';
import { NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { batchTaskQueue, checkRunSettings, Config, loadConfig } from '../config';
import { redactText } from '../config/redact';
import { temporalConnectionOptions } from '../config/temporal-connection';
import { checkPostgres, createPool } from '../db/pool';
import { snapshotSource } from '../activities/backfill/snapshot';
import { storeKeysFor } from '../store/keys';
import { createStoreRedis, describeStoreRedis, type StoreRedis } from '../store/redis-client';
import { checkEvictionPolicy } from '../store/redis-checks';
import { upgradeStoreLayout } from '../store/layout';
import { readDrainLayout, setRoutePartitions } from '../outbox';
import type pg from 'pg';
import type { ActivityClients } from '../activities';
import { startTracing } from '../tracing/provider';
import { createWorker } from './create-worker';
import { lowerProcessPriority } from './cpu-priority';
import { closeCaptureSessions } from '../capture/session-registry';
import { captureSources } from '../capture/sources';
import { readCaptureStatus, type SourcePools } from '../capture/capture-status';
import { lazyTemporalClient } from './temporal-client';
import { dependencyHealth } from './dependency-health';
import { createWorkerMetrics } from './metrics';
import { logger } from '../log/logger';
import { forwardedCoreLogging, PinoTemporalLogger } from '../log/temporal-logger';

const log = logger('worker');

let runtimeInstalled = false;

/**
 * The outbox routes rows by this worker's STORE_PARTITIONS (outbox/shards.ts). With several drain
 * shards the partition count cannot change (rows routed by the old count would reach the wrong
 * shard): a worker configured with another one refuses to start rather than drain wrongly.
 */
async function checkDrainLayout(pool: pg.Pool, config: Config): Promise<void> {
  const layout = await readDrainLayout(pool);
  await setRoutePartitions(pool, config.STORE_PARTITIONS);
  if (layout.shards !== config.DRAIN_SHARDS)
    log.warn(
      `DRAIN_SHARDS=${config.DRAIN_SHARDS}, but the install drains with ${layout.shards} shard(s) (pipeline.drain_layout); this worker drains whichever shards are scheduled. To change it: npm run ops -- reshard --shards ${config.DRAIN_SHARDS}`,
    );
}

/**
 * Runs the worker until SIGINT/SIGTERM (then it finishes in-flight activities, up to the grace
 * time, and resolves) or until a dependency fault it cannot ride out (then it rejects: the caller
 * decides whether to start it again; `npm start` does, after a short pause).
 */
export async function runWorker(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const config = loadConfig(env);
  checkRunSettings(config);
  const queues = taskQueues(config);
  if (config.WORKER_TASK_QUEUES === 'batch' && config.BATCH_WORKER_NICE > 0) lowerPriority(config.BATCH_WORKER_NICE);
  installRuntime(config);
  // Everything opened is closed again on the way out, also when start-up fails half way (the
  // caller may start the worker again).
  const cleanup: Cleanup = [];
  try {
    const { pool, sourcePool } = await openPostgres(config, cleanup);
    const redis = await connectRedis(config, cleanup);
    await checkEvictionPolicy(redis, config.REDIS_EVICTION_CHECK);
    await checkDrainLayout(pool, config);
    await upgradeStoreLayout(redis, storeKeysFor(config));
    // dead letters waiting from before holds existed, or whose hold a crash lost (store/held.ts)
    await holdWaiting({ pool, redis, keys: storeKeysFor(config) });
    const connection = await connectTemporal(config, cleanup);
    const temporalClient = lazyTemporalClient(temporalConnectionOptions(config), config.TEMPORAL_NAMESPACE);
    cleanup.unshift(() => temporalClient.close());
    const metrics = await startMetrics(config, { pool, redis, connection }, cleanup);
    const clients: ActivityClients = {
      pool,
      sourcePool,
      redis,
      config,
      metrics: metrics.drain,
      temporal: temporalClient.get,
    };
    // Capture sessions kept open between capture activities (capture/session-registry.ts) end with the worker.
    cleanup.unshift(() => closeCaptureSessions());
    const tracing = startTracing();
    cleanup.unshift(() => tracing.flush());
    const workers: Worker[] = [];
    for (const taskQueue of queues)
      workers.push(
        await createWorker({
          connection,
          namespace: config.TEMPORAL_NAMESPACE,
          taskQueue,
          ...clients,
          extraActivityInterceptors: tracing.activityInterceptors,
        }),
      );
    log.info(
      { taskQueues: queues },
      `polling task queue${queues.length > 1 ? 's' : ''} ${queues.map((q) => `'${q}'`).join(' and ')} on ${config.TEMPORAL_ADDRESS}/${config.TEMPORAL_NAMESPACE}`,
    );
    // Resolves after SIGINT/SIGTERM (the SDK installs the handlers) and a graceful drain of every
    // worker; if one fails, the others are shut down and the failure is reported.
    await runAll(workers);
  } finally {
    for (const close of cleanup)
      await Promise.resolve()
        .then(close)
        .catch(() => undefined);
  }
}

/** What to close on the way out, most recently opened first (each step unshifts its own). */
type Cleanup = (() => unknown)[];

/** The SDK's runtime, once per process. */
function installRuntime(config: Config): void {
  if (!runtimeInstalled) {
    // The SDK's runtime installs the SIGINT/SIGTERM handlers that shut workers down gracefully.
    // Its logs (the SDK's, the workflows' and activities' `log`, the core's) go through pino too.
    Runtime.install({
      logger: new PinoTemporalLogger(logger('temporal')),
      telemetryOptions: { logging: forwardedCoreLogging(config.LOG_LEVEL) },
    });
    runtimeInstalled = true;
  }
}

/** The primary's pool and the source pool (the replica's, or the primary's again), both checked. */
async function openPostgres(config: Config, cleanup: Cleanup): Promise<{ pool: pg.Pool; sourcePool: pg.Pool }> {
  const pool = createPool(config.DATABASE_URL);
  cleanup.unshift(() => pool.end());
  await checkPostgres(pool);
  // Backfill and verify read from the replica when one is configured, under capture from the WAL
  // (never under the trigger capture: activities/backfill/snapshot.ts, snapshotSource).
  const replica = config.REPLICA_DATABASE_URL ? createPool(config.REPLICA_DATABASE_URL) : pool;
  if (replica === pool) return { pool, sourcePool: pool };
  cleanup.unshift(() => replica.end());
  await checkPostgres(replica, 'the read replica (REPLICA_DATABASE_URL)');
  const { pool: sourcePool, replicaSet } = snapshotSource(config.CAPTURE_MODE, pool, replica);
  if (replicaSet)
    log.warn(
      'REPLICA_DATABASE_URL is not used under the trigger capture: backfill and verify compare the outbox against their snapshots, which only the primary takes right (a standby lists no running transactions); they read the primary (docs/configuration.md)',
    );
  return { pool, sourcePool };
}

/** The store's Redis, connected; it reconnects by itself, warning at most every 5 s. */
async function connectRedis(config: Config, cleanup: Cleanup): Promise<StoreRedis> {
  const redis = createStoreRedis(config, {
    maxRetriesPerRequest: 3,
    lazyConnect: true,
    retryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
  });
  cleanup.unshift(() => redis.disconnect());
  let lastRedisWarn = 0;
  redis.on('error', (err) => {
    // reconnects by itself (retryStrategy); commands meanwhile fail and the activity retries
    if (Date.now() - lastRedisWarn < 5_000) return;
    lastRedisWarn = Date.now();
    log.warn(`redis: ${redactText(err.message)} (reconnecting)`);
  });
  await redis.connect().catch((err) => {
    throw new Error(`Redis is not reachable at ${describeStoreRedis(config)}: ${redactText(err.message)}`);
  });
  return redis;
}

/** The workers' connection to Temporal. */
async function connectTemporal(config: Config, cleanup: Cleanup): Promise<NativeConnection> {
  const connection = await NativeConnection.connect(temporalConnectionOptions(config)).catch((err) => {
    throw new Error(
      `Temporal is not reachable at ${config.TEMPORAL_ADDRESS} (start it with \`npm run stack -- start\`): ${redactText(err.message)}`,
    );
  });
  cleanup.unshift(() => connection.close());
  return connection;
}

/** The worker's metrics: the lag gauges (where the drain runs) and, with WORKER_METRICS_PORT, /metrics and /healthz. */
async function startMetrics(
  config: Config,
  { pool, redis, connection }: { pool: pg.Pool; redis: StoreRedis; connection: NativeConnection },
  cleanup: Cleanup,
): Promise<ReturnType<typeof createWorkerMetrics>> {
  const metrics = createWorkerMetrics();
  // The lag gauges watch the drain: the worker that runs it reports them.
  if (config.WORKER_TASK_QUEUES !== 'batch') {
    // capture from the WAL: each source's slot and coverage (small pools of one connection each)
    const sourcePools: SourcePools = new Map();
    cleanup.unshift(() => Promise.all([...sourcePools.values()].map((p) => p.end())));
    cleanup.unshift(
      metrics.watchLag(pool, redis, storeKeysFor(config), {
        warnOpenAfterMs: config.STALL_WARN_MS,
        capture: () => readCaptureStatus(config, pool, sourcePools),
        // known from the start: a worker started while the pipeline database is down reports them +Inf
        captureSources: config.CAPTURE_MODE === 'logical' ? captureSources(config).map((s) => s.name) : [],
      }),
    );
  }
  const health = dependencyHealth({ pool, redis, temporal: connection });
  const metricsPort = config.WORKER_METRICS_PORT;
  const metricsServer = metricsPort ? await metrics.serve(metricsPort, '127.0.0.1', health) : null;
  if (metricsServer) {
    cleanup.unshift(() => metricsServer.close());
    log.info(`metrics on http://127.0.0.1:${metricsPort}/metrics, health on /healthz`);
  }
  return metrics;
}

/** The task queues this process polls (WORKER_TASK_QUEUES). */
export function taskQueues(config: Config): string[] {
  const pipeline = config.TEMPORAL_TASK_QUEUE;
  const batch = batchTaskQueue(config);
  return config.WORKER_TASK_QUEUES === 'all'
    ? [pipeline, batch]
    : config.WORKER_TASK_QUEUES === 'batch'
      ? [batch]
      : [pipeline];
}

async function runAll(workers: Worker[]): Promise<void> {
  const runs = workers.map((w) => w.run());
  try {
    await Promise.all(runs);
  } catch (err) {
    for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    await Promise.allSettled(runs);
    throw err;
  }
}

/** Landing and export yield to the drain: every thread of this process asks the OS for a lower priority. */
function lowerPriority(nice: number): void {
  const { failed, error } = lowerProcessPriority(nice);
  if (failed) log.warn(`could not lower the batch worker's priority to nice ${nice} on ${failed} thread(s): ${error}`);
}

if (require.main === module) {
  // Started by `npm start` as its batch worker: when the parent goes (even by SIGKILL) stdin
  // closes, and this worker stops gracefully too.
  if (process.env.WORKER_EXIT_WITH_PARENT === '1') {
    process.stdin.on('close', () => process.kill(process.pid, 'SIGTERM'));
    process.stdin.resume();
  }
  runWorker()
    .then(() => process.exit(0)) // a graceful stop (SIGTERM): nothing left to wait for
    .catch((err) => {
      log.error(redactText(err.message));
      process.exit(1);
    });
}
