/**
 * The worker process: `npm run worker` (or inside `npm start`). Connects to Postgres, Redis and
 * Temporal, then runs workflows and activities on the task queue until SIGINT/SIGTERM.
 */
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { Redis } from 'ioredis';
import { loadConfig } from '../config';
import { checkPostgres, createPool } from '../db/pool';
import { storeKeys } from '../store/keys';
import { checkEvictionPolicy } from '../store/redis-checks';
import { upgradeStoreLayout } from '../store/layout';
import { createWorker } from './create-worker';
import { createWorkerMetrics } from './metrics';

export async function runWorker(): Promise<void> {
  const config = loadConfig();
  Runtime.install({ logger: new DefaultLogger(config.LOG_LEVEL) });
  const pool = createPool(config.DATABASE_URL);
  await checkPostgres(pool);
  // Backfill and verify read from the replica when one is configured.
  const sourcePool = config.REPLICA_DATABASE_URL ? createPool(config.REPLICA_DATABASE_URL) : pool;
  if (sourcePool !== pool) await checkPostgres(sourcePool, 'the read replica (REPLICA_DATABASE_URL)');
  const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 3, lazyConnect: true });
  await redis.connect().catch((err) => {
    throw new Error(`Redis is not reachable at ${config.REDIS_URL}: ${err.message}`);
  });
  await checkEvictionPolicy(redis, config.REDIS_EVICTION_CHECK);
  await upgradeStoreLayout(redis, storeKeys(config.REDIS_PREFIX));
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS }).catch((err) => {
    throw new Error(`Temporal is not reachable at ${config.TEMPORAL_ADDRESS} (start it with \`npm run stack -- start\`): ${err.message}`);
  });
  const metrics = createWorkerMetrics();
  const stopLag = metrics.watchLag(pool, redis, storeKeys(config.REDIS_PREFIX), { warnOpenAfterMs: config.STALL_WARN_MS });
  const metricsServer = config.WORKER_METRICS_PORT ? await metrics.serve(config.WORKER_METRICS_PORT) : null;
  if (metricsServer) console.log(`worker: metrics on http://127.0.0.1:${config.WORKER_METRICS_PORT}/metrics`);
  const worker = await createWorker({ connection, namespace: config.TEMPORAL_NAMESPACE, taskQueue: config.TEMPORAL_TASK_QUEUE, pool, sourcePool, redis, config, metrics: metrics.drain });
  console.log(`worker: polling task queue '${config.TEMPORAL_TASK_QUEUE}' on ${config.TEMPORAL_ADDRESS}/${config.TEMPORAL_NAMESPACE}`);
  try {
    await worker.run(); // resolves after SIGINT/SIGTERM (the SDK installs the handlers) and a graceful drain
  } finally {
    stopLag();
    metricsServer?.close();
    await connection.close();
    redis.disconnect();
    if (sourcePool !== pool) await sourcePool.end();
    await pool.end();
  }
}

if (require.main === module) {
  runWorker().catch((err) => {
    console.error(`worker: ${err.message}`);
    process.exit(1);
  });
}
