/**
 * The set-up most integration files share, registered as vitest hooks in one call: test clients
 * (with config overrides), the pipeline's activities under the worker's role, and optionally a real
 * worker on the file's own task queue, a Temporal client and the read API. Everything opened is
 * closed after the file; `reset` empties the state before each test (and `lease` takes the drain
 * lease for activity-level tests).
 */
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { activitiesFor } from './activities';
import {
  pipelineClients,
  resetState,
  sharedTestServer,
  startWorker,
  temporalClient,
  testClients,
  TestClients,
} from './env';
import { startTestApi } from './http';

export interface PipelineFixtureOptions {
  /** Config overrides (TEMPORAL_TASK_QUEUE defaults to `<name>-<pid>`). */
  config?: Record<string, string>;
  /** Run a worker on the task queue and open a Temporal client. */
  worker?: boolean;
  /** Start the read API with this STALE_AFTER_MS. */
  api?: { staleAfterMs?: number };
  /** Empty the state before each test. */
  reset?: boolean;
  /** Take the drain lease with this owner after each reset (activity-level drain tests). */
  lease?: string;
}

export interface PipelineFixture {
  c: TestClients;
  acts: ReturnType<typeof activitiesFor>;
  taskQueue: string;
  address: string;
  bundlePath: string;
  /** Set once beforeAll has run (only with `worker: true` / `api`). */
  temporal: Awaited<ReturnType<typeof temporalClient>>;
  api: Awaited<ReturnType<typeof startTestApi>>;
}

export function usePipeline(name: string, opts: PipelineFixtureOptions = {}): PipelineFixture {
  const taskQueue = opts.config?.TEMPORAL_TASK_QUEUE ?? `${name}-${process.pid}`;
  const c = testClients({ TEMPORAL_TASK_QUEUE: taskQueue, ...opts.config });
  const { address, bundlePath } = sharedTestServer();
  const f = { c, acts: activitiesFor(pipelineClients(c)), taskQueue, address, bundlePath } as PipelineFixture;
  let worker: Awaited<ReturnType<typeof startWorker>> | undefined;

  beforeAll(async () => {
    if (opts.worker) {
      worker = await startWorker(c, address, bundlePath, taskQueue);
      f.temporal = await temporalClient(address);
    }
    if (opts.api)
      f.api = await startTestApi(c.redis, c.keys.prefix, opts.api.staleAfterMs, undefined, c.keys.partitions.length);
  });
  afterAll(async () => {
    await f.api?.close();
    await worker?.stop();
    await f.temporal?.close();
    await c.close();
  });
  if (opts.reset || opts.lease) {
    beforeEach(async () => {
      await resetState(c);
      if (opts.lease) await f.acts.acquireDrainLease({ owner: opts.lease });
    });
  }
  return f;
}
