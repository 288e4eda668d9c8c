/**
 * The worker process: `npm run worker` (or inside `npm start`). Connects to Postgres, Redis and
 * Temporal, then runs workflows and activities on the task queue until SIGINT/SIGTERM.
 */
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { Redis } from 'ioredis';
import { loadConfig } from '../config';
import { redactText, redactUrl } from '../config/redact';
import { temporalConnectionOptions } from '../config/temporal-connection';
import { checkPostgres, createPool } from '../db/pool';
import { storeKeys } from '../store/keys';
import { checkEvictionPolicy } from '../store/redis-checks';
import { upgradeStoreLayout } from '../store/layout';
import { createWorker } from './create-worker';
import { dependencyHealth } from './dependency-health';
import { createWorkerMetrics } from './metrics';

let runtimeInstalled = false;

/**
 * Runs the worker until SIGINT/SIGTERM (then it finishes in-flight activities, up to the grace
 * time, and resolves) or until a dependency fault it cannot ride out (then it rejects: the caller
 * decides whether to start it again; `npm start` does, after a short pause).
 */
export async function runWorker(): Promise<void> {
  const config = loadConfig();
  if (!runtimeInstalled) {
    // The SDK's runtime installs the SIGINT/SIGTERM handlers that shut workers down gracefully.
    Runtime.install({ logger: new DefaultLogger(config.LOG_LEVEL) });
    runtimeInstalled = true;
  }
  // Everything opened is closed again on the way out, also when start-up fails half way (the
  // caller may start the worker again).
  const cleanup: (() => unknown)[] = [];
  try {
    const pool = createPool(config.DATABASE_URL);
    cleanup.unshift(() => pool.end());
    await checkPostgres(pool);
    // Backfill and verify read from the replica when one is configured.
    const sourcePool = config.REPLICA_DATABASE_URL ? createPool(config.REPLICA_DATABASE_URL) : pool;
    if (sourcePool !== pool) {
      cleanup.unshift(() => sourcePool.end());
      await checkPostgres(sourcePool, 'the read replica (REPLICA_DATABASE_URL)');
    }
    const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 3, lazyConnect: true, retryStrategy: (attempt) => Math.min(attempt * 100, 1_000) });
    cleanup.unshift(() => redis.disconnect());
    let lastRedisWarn = 0;
    redis.on('error', (err) => {
      // reconnects by itself (retryStrategy); commands meanwhile fail and the activity retries
      if (Date.now() - lastRedisWarn < 5_000) return;
      lastRedisWarn = Date.now();
      console.warn(`worker: redis: ${redactText(err.message)} (reconnecting)`);
    });
    await redis.connect().catch((err) => {
      throw new Error(`Redis is not reachable at ${redactUrl(config.REDIS_URL)}: ${redactText(err.message)}`);
    });
    await checkEvictionPolicy(redis, config.REDIS_EVICTION_CHECK);
    await upgradeStoreLayout(redis, storeKeys(config.REDIS_PREFIX));
    const connection = await NativeConnection.connect(temporalConnectionOptions(config)).catch((err) => {
      throw new Error(`Temporal is not reachable at ${config.TEMPORAL_ADDRESS} (start it with \`npm run stack -- start\`): ${redactText(err.message)}`);
    });
    cleanup.unshift(() => connection.close());
    const metrics = createWorkerMetrics();
    cleanup.unshift(metrics.watchLag(pool, redis, storeKeys(config.REDIS_PREFIX), { warnOpenAfterMs: config.STALL_WARN_MS }));
    const health = dependencyHealth({ pool, redis, temporal: connection });
    const metricsServer = config.WORKER_METRICS_PORT ? await metrics.serve(config.WORKER_METRICS_PORT, '127.0.0.1', health) : null;
    if (metricsServer) {
      cleanup.unshift(() => metricsServer.close());
      console.log(`worker: metrics on http://127.0.0.1:${config.WORKER_METRICS_PORT}/metrics, health on /healthz`);
    }
    const worker = await createWorker({ connection, namespace: config.TEMPORAL_NAMESPACE, taskQueue: config.TEMPORAL_TASK_QUEUE, pool, sourcePool, redis, config, metrics: metrics.drain });
    console.log(`worker: polling task queue '${config.TEMPORAL_TASK_QUEUE}' on ${config.TEMPORAL_ADDRESS}/${config.TEMPORAL_NAMESPACE}`);
    await worker.run(); // resolves after SIGINT/SIGTERM (the SDK installs the handlers) and a graceful drain
  } finally {
    for (const close of cleanup) await Promise.resolve().then(close).catch(() => undefined);
  }
}

if (require.main === module) {
  runWorker()
    .then(() => process.exit(0)) // a graceful stop (SIGTERM): nothing left to wait for
    .catch((err) => {
      console.error(`worker: ${redactText(err.message)}`);
      process.exit(1);
    });
}
