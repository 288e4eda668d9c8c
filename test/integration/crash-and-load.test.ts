/**
 * End-to-end correctness under load and failure: the simulator writes from several connections
 * (out-of-order commits) while the drain workflow runs; the worker is killed (SIGKILL, no
 * graceful shutdown) and restarted mid-run. Afterwards the whole store must equal the source,
 * computed by SQL: a lost change or a load delta applied twice would show as a mismatch.
 */
import { appliedRows } from '../support/cursor';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { compareSnapshots } from '../../reconcile/compare';
import { sourceFeatures } from '../../reconcile/source-features';
import { storeFeatures } from '../../reconcile/store-features';
import { CatalogueSize, seedCatalogue } from '../../simulator/catalogue';
import { runTraffic } from '../../simulator/traffic';
import {
  eventually,
  resetState,
  sharedTestServer,
  startDrain,
  startWorker,
  temporalClient,
  testClients,
} from '../support/env';
import { exited, spawnWorker } from '../support/worker-process';
import { trafficTarget } from '../support/logical-run';

const size: CatalogueSize = { skus: 400, fcs: 6, regions: 3, fcsPerRegion: 2, fcsPerSku: 3 };
const { address, bundlePath } = sharedTestServer();
let temporal: Awaited<ReturnType<typeof temporalClient>>;

beforeAll(async () => {
  temporal = await temporalClient(address);
});
afterAll(() => temporal?.close());

async function mismatches(c: ReturnType<typeof testClients>) {
  return compareSnapshots(await sourceFeatures(c.pool), await storeFeatures(c.redis, c.keys));
}

const cursorId = (c: ReturnType<typeof testClients>) => appliedRows(c.pool);

describe('under load', () => {
  const c = testClients({ TEMPORAL_TASK_QUEUE: `load-${process.pid}` });
  afterAll(() => c.close());
  beforeEach(() => resetState(c));

  it('a simulator run of thousands of changes ends with Redis exactly matching the source', async () => {
    const worker = await startWorker(c, address, bundlePath, c.config.TEMPORAL_TASK_QUEUE);
    const run = await startDrain(temporal.client, c.config, {
      taskQueue: c.config.TEMPORAL_TASK_QUEUE,
      workflowId: `drain-load-${Date.now()}`,
      args: [{ intervalMs: 60_000, idleWaitMs: 200 }],
    });
    try {
      await seedCatalogue(c.pool, size);
      const stats = await runTraffic(trafficTarget(c.pool), { rate: 0, changes: 6000, connections: 8, seed: 7, size });
      expect(stats.changes).toBeGreaterThanOrEqual(6000);
      const left = await eventually(
        async () => ((await mismatches(c)).length === 0 ? 'synced' : null),
        30_000,
        'store to match the source',
      );
      expect(left).toBe('synced');
      expect((await c.pool.query(`select count(*)::int as n from pipeline.dead_letters`)).rows[0].n).toBe(0);
    } finally {
      await run.terminate('test over').catch(() => undefined);
      await worker.stop();
    }
  });
});

describe('worker killed mid-run', () => {
  const c = testClients({ TEMPORAL_TASK_QUEUE: `crash-${process.pid}`, DRAIN_BATCH_SIZE: '200' });
  afterAll(() => c.close());
  beforeEach(() => resetState(c));

  it('loses nothing and applies nothing twice after a SIGKILL and a restart', async () => {
    await seedCatalogue(c.pool, size);
    let worker = spawnWorker(c.config, address, bundlePath);
    const run = await startDrain(temporal.client, c.config, {
      taskQueue: c.config.TEMPORAL_TASK_QUEUE,
      workflowId: `drain-crash-${Date.now()}`,
      args: [{ intervalMs: 60_000, idleWaitMs: 200, batchSize: 200 }],
    });
    try {
      const traffic = runTraffic(trafficTarget(c.pool), {
        rate: 1500,
        durationMs: 8000,
        connections: 6,
        seed: 11,
        size,
      });
      // Kill it while it is busy: once it has applied something and work keeps arriving.
      const before = await eventually(
        async () => {
          const id = await cursorId(c);
          return id > 2000 ? id : null;
        },
        30_000,
        'the first worker to apply batches',
      );
      worker.kill('SIGKILL');
      await exited(worker);
      const atKill = await cursorId(c);
      expect(atKill).toBeGreaterThanOrEqual(before);

      worker = spawnWorker(c.config, address, bundlePath);
      // More changes after the kill, so the restarted worker has work whenever the kill fell (on a
      // slow machine the first worker can start late and apply the whole first run at once).
      const afterKill = runTraffic(trafficTarget(c.pool), {
        rate: 1500,
        durationMs: 2000,
        connections: 4,
        seed: 12,
        size,
      });
      await Promise.all([traffic, afterKill]);
      await eventually(async () => (await cursorId(c)) > atKill, 60_000, 'the restarted worker to continue');
      const synced = await eventually(
        async () => ((await mismatches(c)).length === 0 ? 'synced' : null),
        60_000,
        'store to match the source',
      );
      expect(synced).toBe('synced');
      expect((await c.pool.query(`select count(*)::int as n from pipeline.dead_letters`)).rows[0].n).toBe(0);
      // The same workflow run carried on: the kill did not need a new run or an operator.
      expect((await run.describe()).status.name).toBe('RUNNING');
    } finally {
      await run.terminate('test over').catch(() => undefined);
      worker.kill('SIGTERM');
      await exited(worker);
    }
  });
});
