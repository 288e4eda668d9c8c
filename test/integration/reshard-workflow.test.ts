/**
 * Re-sharding as a durable workflow (issue 21, points 2, 4, 5, 6): the freeze belongs to the
 * workflow run; a cancelled run lifts it, a terminated one leaves it to its lease and the drains
 * lift it themselves; a freeze left with no owner (what an interrupted `ops reshard` of an earlier
 * version left) expires the same way; a second request for another count is refused at once and
 * one for the same count attaches; an operator's pause survives the re-split.
 *
 * A shard whose lease is held by someone else (a drain "running" elsewhere that never gets there)
 * keeps the run in its catch-up for as long as a test needs.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowFailedError } from '@temporalio/client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import { acquireLease, drainLockName, drainShard, drainShards, readDrainLayout } from '../../outbox';
import { ReshardBusy, startOrAttachReshard } from '../../scripts/lib/reshard';
import { runOps } from '../support/ops-cli';
import { ALL_SCHEDULE_IDS, drainScheduleIds, ensureSchedules } from '../../scripts/lib/schedules';
import { RESHARD_WORKFLOW_ID, reshardProgressQuery } from '../../workflows';
import { activitiesFor } from '../support/activities';
import {
  deleteSchedules,
  eventually,
  pipelineClients,
  resetState,
  sharedTestServer,
  startWorker,
  temporalClient,
  testClients,
} from '../support/env';
import { seedMinimal } from '../support/source';

const LEASE_MS = 2_000;
const c = testClients({
  TEMPORAL_TASK_QUEUE: `reshard-wf-${process.pid}`,
  STORE_PARTITIONS: '16',
  RESHARD_FREEZE_LEASE_MS: String(LEASE_MS),
});
const start = c.config.DRAIN_SHARDS;
const [other, third] = [4, 2, 1].filter((n) => n !== start);
const { address, bundlePath } = sharedTestServer();
let temporal: Awaited<ReturnType<typeof temporalClient>>;
let worker: Awaited<ReturnType<typeof startWorker>>;
const acts = activitiesFor(pipelineClients(c));

async function deleteEverySchedule(): Promise<void> {
  const ids = [...ALL_SCHEDULE_IDS, ...[1, 2, 4].flatMap(drainScheduleIds)];
  await deleteSchedules(temporal.client, ids);
}

/**
 * The schedules of the current layout, every one paused: the drain's as `ops pause` leaves them,
 * and the others so that no scheduled verify (its snapshot transaction waits for a drain that
 * never comes) runs under these tests.
 */
async function pausedSchedules(): Promise<void> {
  await ensureSchedules(temporal.client, c.config, start);
  for (const id of [...ALL_SCHEDULE_IDS.filter((id) => !id.includes('drain')), ...drainScheduleIds(start)])
    await temporal.client.schedule.getHandle(id).pause('test: paused');
}

/** Shard 0's lease held by a drain that never comes: a re-split waits in its catch-up. */
const holdShardZero = () => acquireLease(c.pool, drainShard(0, start).lease, 'elsewhere', 600_000);
const releaseShardZero = () => c.pool.query(`delete from pipeline.leases where owner = 'elsewhere'`);

const startReshard = (shards: number) =>
  startOrAttachReshard(temporal.client, c.config, c.pool, shards, { startedBy: 'test' });

async function inCatchUp(): Promise<void> {
  await eventually(
    async () =>
      (await temporal.client.workflow.getHandle(RESHARD_WORKFLOW_ID).query(reshardProgressQuery)).phase ===
      'catching up',
    20_000,
    'the re-split to wait in its catch-up',
  );
}

beforeAll(async () => {
  temporal = await temporalClient(address);
  worker = await startWorker(c, address, bundlePath, c.config.TEMPORAL_TASK_QUEUE);
});
afterAll(async () => {
  await deleteEverySchedule();
  await worker?.stop();
  await temporal?.close();
  await c.close();
});
beforeEach(async () => {
  await resetState(c);
  await seedMinimal(c.pool);
  await deleteEverySchedule();
  await pausedSchedules();
});
afterEach(async () => {
  await releaseShardZero();
  await temporal.client.workflow
    .getHandle(RESHARD_WORKFLOW_ID)
    .terminate('test over')
    .catch(() => undefined);
});

describe('the re-split workflow', () => {
  it('keeps an operator’s pause: the new shards’ schedules are created paused and nothing is triggered', async () => {
    const { handle } = await startReshard(other);
    const r = await handle.result();
    expect(r).toMatchObject({ phase: 'done', from: start, to: other, paused: true, triggered: [] });
    expect(await readDrainLayout(c.pool)).toMatchObject({ shards: other, frozen: null });
    for (const id of drainScheduleIds(other))
      expect((await temporal.client.schedule.getHandle(id).describe()).state.paused).toBe(true);
    const running = [];
    for await (const wf of temporal.client.workflow.list({
      query: `WorkflowType = 'drainWorkflow' AND ExecutionStatus = 'Running' AND TaskQueue = '${c.config.TEMPORAL_TASK_QUEUE}'`,
    }))
      running.push(wf.workflowId);
    expect(running).toEqual([]);
  });

  it('a second request: the same count attaches to the run, another count is refused at once with the layout found', async () => {
    await holdShardZero();
    const first = await startReshard(other);
    expect(first.attached).toBe(false);
    await inCatchUp();
    const same = await startReshard(other);
    expect(same).toMatchObject({ attached: true });
    expect(same.handle.workflowId).toBe(RESHARD_WORKFLOW_ID);
    // the operator's --timeout cannot change the run it attaches to: said, not silently dropped
    const cli = await runOps(c.config, address, ['reshard', '--shards', String(other), '--timeout', '30', '--no-wait']);
    expect(cli.stdout).toMatch(/following the re-split already running/);
    expect(cli.stderr).toMatch(
      /--timeout 30 is not applied: the re-split already running keeps the timeout it was started with/,
    );
    expect(cli.code).toBe(0);
    const t0 = Date.now();
    await expect(startReshard(third)).rejects.toThrow(ReshardBusy);
    await expect(startReshard(third)).rejects.toThrow(
      new RegExp(`to ${other} shard\\(s\\) is already running .* drains with ${start} shard\\(s\\), frozen at`),
    );
    expect(Date.now() - t0).toBeLessThan(5_000);
    await releaseShardZero();
    expect(await first.handle.result()).toMatchObject({ phase: 'done', to: other });
  });

  it('cancelled while it waits: its freeze is lifted and the drain goes on with the old shards', async () => {
    await holdShardZero();
    const { handle } = await startReshard(other);
    await inCatchUp();
    expect((await readDrainLayout(c.pool)).frozen).toMatchObject({ owner: expect.stringMatching(/^drain-reshard\//) });
    await handle.cancel();
    await expect(handle.result()).rejects.toThrow(WorkflowFailedError);
    expect(await readDrainLayout(c.pool)).toMatchObject({ shards: start, frozen: null });
  });

  // Cancelled once its split had begun, the run used to close at once while the split went on:
  // the new layout came into force with no schedules of its own, and nothing drained.
  it('cancelled while it splits: the split and the new layout’s schedules still run to their end', async () => {
    await holdShardZero();
    const { handle } = await startReshard(other);
    await inCatchUp();
    // A new shard's drain lock, held elsewhere: the switch (after the split is marked begun) waits for it.
    const blocker = new pg.Client({ connectionString: c.config.DATABASE_URL });
    await blocker.connect();
    try {
      await blocker.query('select pg_advisory_lock(hashtext($1))', [drainLockName(drainShards(other)[0]!.consumer)]);
      await releaseShardZero();
      await eventually(async () => (await readDrainLayout(c.pool)).frozen?.splitting, 20_000, 'the split to begin');
      await handle.cancel();
      await sleep(1_000); // the run has the cancellation while its split waits
    } finally {
      await blocker.end();
    }
    expect(await handle.result()).toMatchObject({ phase: 'done', from: start, to: other });
    expect(await readDrainLayout(c.pool)).toMatchObject({ shards: other, frozen: null });
    for (const id of drainScheduleIds(other)) await temporal.client.schedule.getHandle(id).describe(); // (throws if absent)
  });

  it('terminated while it waits: the freeze outlives it only by its lease, then a drain batch lifts it', async () => {
    await holdShardZero();
    const { handle } = await startReshard(other);
    await inCatchUp();
    await handle.terminate('an operator pressed Terminate');
    await releaseShardZero();
    await acts.acquireDrainLease({ owner: 'terminated-test' });
    // still frozen while the lease runs: the shards drain up to the freeze and no further
    const frozen = (await readDrainLayout(c.pool)).frozen;
    expect(frozen).not.toBeNull();
    await c.pool.query(`insert into shop.skus (sku_id, title, lifecycle) values ('AFTER', 't', 'active')`);
    await sleep(LEASE_MS + 500);
    await eventually(
      async () => {
        await acts.drainBatch({ owner: 'terminated-test' });
        return (await readDrainLayout(c.pool)).frozen === null;
      },
      10_000,
      'a drain batch to lift the expired freeze',
    );
    for (;;) if ((await acts.drainBatch({ owner: 'terminated-test' })).outcome === 'idle') break;
    expect(await c.redis.hget(c.keys.sku('AFTER'), '#')).not.toBeNull(); // changes after the freeze flow again
    expect((await readDrainLayout(c.pool)).shards).toBe(start);
  });

  it('a freeze left with no owner (an interrupted ops reshard of an earlier version) expires too', async () => {
    await c.pool.query(
      `update pipeline.drain_layout set frozen = pg_current_snapshot(), frozen_at = now(), frozen_by = null, frozen_until = null`,
    );
    await acts.acquireDrainLease({ owner: 'legacy-test' });
    await acts.drainBatch({ owner: 'legacy-test' });
    expect((await readDrainLayout(c.pool)).frozen).toBeNull();
  });

  it('the Web UI shows what it is doing: its current details name the phase and the target', async () => {
    await holdShardZero();
    const { handle } = await startReshard(other);
    await inCatchUp();
    const m = (await handle.query('__temporal_workflow_metadata')) as { currentDetails?: string };
    expect(m.currentDetails).toMatch(new RegExp(`re-split of the drain to ${other} shard\\(s\\): .*waiting for each`));
    const d = await handle.describe();
    expect(d.memo).toMatchObject({ shards: other });
    await releaseShardZero();
    await handle.result();
  });
});
