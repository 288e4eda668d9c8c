/**
 * Test wiring: a dedicated database, Redis db and key prefix, a config with short timings, and
 * helpers to reset state and to run a real worker against the shared dev server.
 */
import { DefaultLogger, NativeConnection, Runtime, Worker, type ActivityInterceptorsFactory } from '@temporalio/worker';
import { Client, Connection } from '@temporalio/client';
import pg from 'pg';
import { inject, vi } from 'vitest';
import { Config, loadConfig } from '../../config';
import { createPool } from '../../db/pool';
import { truncateEverything } from '../../db/truncate';
import { storeKeysFor } from '../../store/keys';
import { createStoreRedis, onEachNode, readyMasterNodes, scanKeys, StoreRedis } from '../../store/redis-client';
import { setEpoch } from '../../store/watermark';
import { createWorker } from '../../worker/create-worker';
import { lazyTemporalClient } from '../../worker/temporal-client';
import { drainWorkflow, type DrainWorkflowInput } from '../../workflows';
import { FIELD } from '../../store/names';
import { createBadgeReader } from '../../serving/badge-reader';

import { TEST_DATABASE_URL, TEST_REDIS_URL } from './test-urls';
import { fileCapture, LOGICAL_RUN, LOGICAL_RUN_CONFIG, resetSources } from './logical-run';
import { RoutedPool } from './routed-pool';
import { TEST_INVENTORY_URL, TEST_ORDERS_URL } from './split-sources';

export { TEST_DATABASE_URL, TEST_REDIS_URL };

/**
 * The Redis Cluster the test run started (vitest.cluster.config.mts), if any: then every test
 * client, worker and child process of the file uses it as the online store.
 */
export function testClusterNodes(): string {
  try {
    return (inject as unknown as (key: string) => string | undefined)('redisClusterNodes') ?? '';
  } catch {
    return ''; // not inside a test file (a child process): its environment says
  }
}

export function testConfig(overrides: Record<string, string> = {}): Config {
  const cluster = testClusterNodes();
  return loadConfig({
    DATABASE_URL: TEST_DATABASE_URL,
    REDIS_URL: TEST_REDIS_URL,
    // TEST_STORE_PARTITIONS splits the store on a single Redis too (the partitioned code path
    // without a cluster); on the test cluster the default is the cluster's (16)
    ...(cluster ? { REDIS_CLUSTER_NODES: cluster } : {}),
    ...(process.env.TEST_STORE_PARTITIONS ? { STORE_PARTITIONS: process.env.TEST_STORE_PARTITIONS } : {}),
    // TEST_DRAIN_SHARDS: the drain in that many shards (the cluster run uses 4)
    ...(process.env.TEST_DRAIN_SHARDS ? { DRAIN_SHARDS: process.env.TEST_DRAIN_SHARDS } : {}),
    REDIS_PREFIX: 'fbt:',
    DRAIN_POLL_MS: '20',
    DRAIN_BATCH_SIZE: '500',
    APPLY_CHUNK: '100',
    EXPORT_DIR: `.data/test/export-${process.pid}`,
    // the logical run (test/support/logical-run.ts): two source databases, capture from the WAL
    ...LOGICAL_RUN_CONFIG,
    ...overrides,
  });
}

/**
 * The pipeline's code in the tests (activities, workers, child processes) connects to the test
 * database as the least-privilege worker role (sql/least-privilege.sql, applied by the global
 * set-up); the tests themselves write and inspect the shop tables as the owner, as the services
 * and an operator would.
 */
export function workerRoleUrl(url: string): string {
  if (url !== TEST_DATABASE_URL) return url; // other databases (the upgrade test's) have no roles
  const u = new URL(url);
  u.username = 'fresh_badges_worker';
  return u.toString();
}

export interface TestClients {
  config: Config;
  /** The owner: what the test itself writes and reads. */
  pool: pg.Pool;
  /** The worker's role: what the pipeline's code gets (pipelineClients). */
  workerPool: pg.Pool;
  redis: StoreRedis;
  keys: ReturnType<typeof storeKeysFor>;
  close(): Promise<void>;
}

export function testClients(overrides: Record<string, string> = {}): TestClients {
  const config = testConfig(overrides);
  // the logical run: the test's SQL goes to the database holding the tables it names
  const pool =
    LOGICAL_RUN && config.DATABASE_URL === TEST_DATABASE_URL
      ? (new RoutedPool({
          pipeline: config.DATABASE_URL,
          inventory: TEST_INVENTORY_URL,
          orders: TEST_ORDERS_URL,
        }) as unknown as pg.Pool)
      : createPool(config.DATABASE_URL, 20);
  const workerUrl = workerRoleUrl(config.DATABASE_URL);
  const workerPool = workerUrl === config.DATABASE_URL ? pool : createPool(workerUrl, 20);
  const redis = createStoreRedis(config);
  return {
    config,
    pool,
    workerPool,
    redis,
    keys: storeKeysFor(config),
    async close() {
      await fileCapture.stopIfWriting(workerPool);
      redis.disconnect();
      await pool.end();
      if (workerPool !== pool) await workerPool.end();
    },
  };
}

/** The clients the pipeline's code gets: the database as the worker's role. */
export function pipelineClients(c: TestClients): TestClients & { sourcePool: pg.Pool } {
  return { ...c, pool: c.workerPool, sourcePool: c.workerPool };
}

/**
 * Empties the source, the pipeline's tables and the test Redis db. In the logical run, the sources
 * are emptied apart (the slots moved past it) and the file's capture (re)started once all is empty.
 */
export async function resetState(
  c: Pick<TestClients, 'pool' | 'redis' | 'config'> & { workerPool?: pg.Pool },
): Promise<void> {
  const logical = c.pool instanceof RoutedPool;
  if (logical) await resetSources(c.pool);
  await truncateEverything(logical ? (c.pool as unknown as RoutedPool).pipeline : c.pool);
  // as many drain shards as the test's configuration (DRAIN_SHARDS), routing by its partitions
  await c.pool.query(`update pipeline.drain_layout set shards = $1, partitions = $2`, [
    c.config.DRAIN_SHARDS,
    c.config.STORE_PARTITIONS,
  ]);
  // a file's first reset uses a client just created (the cluster run's first file once failed here)
  await Promise.all((await readyMasterNodes(c.redis)).map((node) => node.flushdb()));
  // An empty store of an empty source is complete: mark it so, as a finished backfill would.
  const keys = storeKeysFor(c.config);
  await setEpoch(c.redis, keys, 'test-reset');
  await c.redis.set(keys.partitionCount, String(keys.partitions.length));
  if (logical) await fileCapture.start(c.workerPool ?? (c.pool as unknown as RoutedPool).pipeline);
}

export async function temporalClient(address: string): Promise<{ client: Client; close(): Promise<void> }> {
  const connection = await Connection.connect({ address });
  return { client: new Client({ connection }), close: () => connection.close() };
}

/** A real worker on its own task queue, running in this process until stop(). */
let runtimeInstalled = false;

export async function startWorker(
  c: TestClients,
  address: string,
  bundlePath: string,
  taskQueue: string,
  opts: { activityInterceptors?: ActivityInterceptorsFactory[] } = {},
): Promise<{ worker: Worker; stop(): Promise<void> }> {
  if (!runtimeInstalled) {
    // Worker state changes at INFO drown test output; warnings and errors still show.
    Runtime.install({ logger: new DefaultLogger('WARN') });
    runtimeInstalled = true;
  }
  const connection = await NativeConnection.connect({ address });
  const temporal = lazyTemporalClient({ address }, 'default');
  const worker = await createWorker({
    connection,
    namespace: 'default',
    taskQueue,
    pool: c.workerPool,
    redis: c.redis,
    config: c.config,
    bundlePath,
    temporal: temporal.get,
    extraActivityInterceptors: opts.activityInterceptors,
  });
  const running = worker.run();
  return {
    worker,
    async stop() {
      worker.shutdown();
      await running;
      await connection.close();
      await temporal.close();
    },
  };
}

/**
 * Polls `check` (vitest's vi.waitFor, every 50 ms) until it returns a truthy value, and returns
 * it; past the deadline, fails naming what it waited for and the last error seen.
 */
export async function eventually<T>(
  check: () => Promise<T | undefined | null | false>,
  timeoutMs = 15_000,
  what = 'condition',
): Promise<T> {
  let last: unknown;
  try {
    return await vi.waitFor(
      async () => {
        let v: T | undefined | null | false;
        try {
          v = await check();
        } catch (err) {
          last = err;
          throw err;
        }
        if (!v) throw new Error(`still waiting for ${what}`);
        return v;
      },
      { timeout: timeoutMs, interval: 50 },
    );
  } catch {
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
  }
}

/** The dev server and workflow bundle the global set-up prepared for this run. */
export function sharedTestServer(): { address: string; bundlePath: string } {
  const get = inject as unknown as (key: string) => string;
  return { address: get('temporalAddress'), bundlePath: get('workflowBundlePath') };
}

/**
 * Waits until no drain batch is running any more: terminating a workflow does not interrupt the
 * activity already in flight, which keeps polling until its wait is over. The watermark moves
 * with every poll (every 20 ms in tests), so "it stopped moving" for a second and a half means
 * the batch is done: a loaded machine can pause a running one for more than the 400 ms once used.
 */
export async function drainSettled(c: Pick<TestClients, 'redis' | 'keys'>, quietMs = 1_500): Promise<void> {
  let last = await c.redis.hget(c.keys.partitions[0].meta, FIELD.caughtUpAt);
  let since = Date.now();
  await eventually(
    async () => {
      const now = await c.redis.hget(c.keys.partitions[0].meta, FIELD.caughtUpAt);
      if (now !== last) {
        last = now;
        since = Date.now();
      }
      return Date.now() - since >= quietMs;
    },
    15_000,
    'running drain batches to finish',
  );
}

/** A badge reader of the test store (reads stale after `staleAfterMs` without a confirmation). */
export const storeReader = (c: Pick<TestClients, 'redis' | 'keys'>, staleAfterMs: number) =>
  createBadgeReader({ redis: c.redis, prefix: c.keys.prefix, partitions: c.keys.partitions.length, staleAfterMs });

/** Every key of one kind in the test store (on a cluster: from every master). */
export async function storeKeysOfKind(
  c: Pick<TestClients, 'redis' | 'keys'>,
  kind: 's' | 'f' | 'l' | 'r',
): Promise<string[]> {
  const out: string[] = [];
  for await (const page of scanKeys(c.redis, c.keys.pattern(kind))) out.push(...page);
  return out.sort();
}

/** Deletes keys one by one, each on its own node (a multi-key DEL would cross slots on a cluster). */
export async function deleteKeys(redis: StoreRedis, keys: string[]): Promise<void> {
  await onEachNode(
    redis,
    keys,
    (k) => k,
    (p, k) => void p.del(k),
  );
}

/**
 * Starts "the drain" as the test's configuration has it: one workflow, or one per shard
 * (DRAIN_SHARDS > 1: ids `<workflowId>-<k>of<N>`, each input naming its shard). The handle
 * terminates, signals and describes them all (describe: the first shard's).
 */
export async function startDrain(
  client: Client,
  config: Config,
  opts: { taskQueue: string; workflowId: string; args: [DrainWorkflowInput] },
) {
  const shards = config.DRAIN_SHARDS;
  if (shards === 1) return client.workflow.start(drainWorkflow, opts);
  const handles = await Promise.all(
    Array.from({ length: shards }, (_, index) =>
      client.workflow.start(drainWorkflow, {
        ...opts,
        workflowId: `${opts.workflowId}-${index}of${shards}`,
        args: [{ ...opts.args[0], shard: { index, count: shards } }],
      }),
    ),
  );
  return {
    ...handles[0],
    workflowId: handles[0].workflowId,
    terminate: async (reason?: string) => {
      const [first] = await Promise.allSettled(handles.map((h) => h.terminate(reason)));
      if (first.status === 'rejected') throw first.reason;
      return first.value;
    },
    signal: async (...args: Parameters<(typeof handles)[0]['signal']>) => {
      await Promise.all(handles.map((h) => h.signal(...args)));
    },
    describe: () => handles[0].describe(),
    result: async () => (await Promise.all(handles.map((h) => h.result())))[0],
  } as unknown as (typeof handles)[0];
}

/** Deletes the schedules a test created (one already gone is fine). */
export async function deleteSchedules(client: Client | undefined, ids: string[]): Promise<void> {
  for (const id of ids)
    await client?.schedule
      .getHandle(id)
      .delete()
      .catch(() => undefined);
}
