/**
 * A backfill step heartbeats while it runs (activities/backfill: BACKFILL_KEEP_ALIVE_MS), so its
 * heartbeat timeout (workflows/activity-options.ts) can retry a step whose worker died within
 * seconds, while a live step that takes long is left to finish. Without the heartbeat, a step
 * longer than the timeout would be failed and started again for ever; without the timeout, a dead
 * worker's step waited out its 5-minute start-to-close, reads of the emptied store stale meanwhile.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { MockActivityEnvironment } from '@temporalio/testing';
import type pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities';
import { BACKFILL_KEEP_ALIVE_MS } from '../../activities/backfill';
import { pipelineClients, resetState, testClients } from '../support/env';
import { LOGICAL_RUN } from '../support/logical-run';

const c = testClients();
afterAll(() => c.close());

describe('backfill steps', () => {
  // (under capture from the WAL the plan reads each source by its URL, not through this pool)
  it.skipIf(LOGICAL_RUN)(
    'heartbeat while a step waits on a slow source',
    async () => {
      await resetState(c);
      const clients = pipelineClients(c);
      // the source answers the plan's first query only after more than one keep-alive period
      const slow = new Proxy(clients.sourcePool, {
        get(target, prop, receiver) {
          if (prop !== 'query') return Reflect.get(target, prop, receiver);
          return async (...args: unknown[]) => {
            await sleep(BACKFILL_KEEP_ALIVE_MS + 1_500);
            return (target.query as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      }) as pg.Pool;
      const { backfillPlan } = createActivities({ ...clients, sourcePool: slow });
      const env = new MockActivityEnvironment();
      let beats = 0;
      env.on('heartbeat', () => beats++);
      const plan = await env.run(backfillPlan, {});
      expect(plan).toMatchObject({ skus: expect.any(Number) });
      expect(beats).toBeGreaterThan(0);
    },
    60_000,
  );
});
