/**
 * The worker's lag gauges while the pipeline database is unreachable (worker/metrics.ts): the
 * store's staleness is read from Redis and still moves, and each capture source's lag reads +Inf.
 * Before, the first failed query ended the whole refresh: every gauge kept its last healthy value
 * (or never got one), so the staleness and capture alerts stayed silent through the outage.
 */
import { afterAll, describe, it } from 'vitest';
import { createPool } from '../../db/pool';
import { createWorkerMetrics } from '../../worker/metrics';
import type { CaptureSourceStatus } from '../../capture/capture-status';
import { eventually, resetState } from '../support/env';
import { usePipeline } from '../support/pipeline-fixture';
import { freePort } from '../support/redis-process';

const { c } = usePipeline('metrics-outage');

describe("the worker's lag gauges with the pipeline database down", () => {
  const stops: (() => void)[] = [];
  afterAll(() => stops.forEach((stop) => stop()));

  it('the store lag reads +Inf from Redis, and a capture source read before reads +Inf', async () => {
    await resetState(c);
    // nothing listens there: every query of the pipeline database fails
    const down = createPool(`postgres://postgres@127.0.0.1:${await freePort()}/nothing`, 2);
    const metrics = createWorkerMetrics();
    let captureUp = true;
    const status = { source: 'inventory', coveredAtMs: Date.now(), lostAtMs: null, slotState: null };
    stops.push(
      metrics.watchLag(down, c.redis, c.keys, {
        everyMs: 50,
        capture: async () => {
          if (!captureUp) throw new Error('connect ECONNREFUSED');
          return [status as unknown as CaptureSourceStatus];
        },
      }),
    );
    const gauge = async (name: string) =>
      new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(await metrics.registry.metrics())?.[1];
    // a store with no epoch (emptied, never filled): what reads see as not fresh
    for (const p of c.keys.partitions) await c.redis.del(p.epoch);
    await eventually(async () => (await gauge('fresh_badges_drain_lag_seconds')) === '+Inf', 5_000, 'store lag +Inf');
    await eventually(
      async () => Number(await gauge('fresh_badges_capture_lag_seconds')) < 60,
      5_000,
      'capture lag while capture status reads',
    );
    captureUp = false;
    await eventually(
      async () => (await gauge('fresh_badges_capture_lag_seconds')) === '+Inf',
      5_000,
      'capture lag +Inf once its status cannot be read',
    );
    await down.end();
  });

  it('a worker started during the outage reports its configured capture sources +Inf', async () => {
    const down = createPool(`postgres://postgres@127.0.0.1:${await freePort()}/nothing`, 2);
    const metrics = createWorkerMetrics();
    stops.push(
      metrics.watchLag(down, c.redis, c.keys, {
        everyMs: 50,
        capture: () => Promise.reject(new Error('connect ECONNREFUSED')),
        captureSources: ['orders'],
      }),
    );
    await eventually(
      async () => /^fresh_badges_capture_lag_seconds\{source="orders"\} \+Inf$/m.test(await metrics.registry.metrics()),
      5_000,
      'capture lag +Inf for the configured source',
    );
    await down.end();
  });
});
