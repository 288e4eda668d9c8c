/**
 * The drain as Temporal runs it: a real worker, the real dev server, the real schedule.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { WORKFLOW_INPUT_DEFAULTS } from '../../config/defaults';
import { describe, expect, it } from 'vitest';
import { batchTaskQueue, names } from '../../config';
import { compareSnapshots } from '../../reconcile/compare';
import { sourceFeatures } from '../../reconcile/source-features';
import { storeFeatures } from '../../reconcile/store-features';
import { ALL_SCHEDULE_IDS, drainScheduleIds, ensureSchedules } from '../../scripts/lib/schedules';
import { drainScheduleIdOf, drainShard } from '../../outbox';
import { drainWorkflow, stopDrainSignal } from '../../workflows';
import { deleteSchedules, eventually, startDrain } from '../support/env';
import { seedMinimal } from '../support/source';
import { usePipeline } from '../support/pipeline-fixture';

const pipeline = usePipeline('drain-wf', { config: { DRAIN_INTERVAL_MS: '5000' }, worker: true, reset: true });
const { c, taskQueue, bundlePath } = pipeline;

const inSync = async () =>
  compareSnapshots(await sourceFeatures(c.pool), await storeFeatures(c.redis, c.keys)).length === 0;

describe('drain workflow', () => {
  it('brings every kind of change on every table into Redis, and a second run steps aside', async () => {
    const first = await startDrain(pipeline.temporal.client, c.config, {
      taskQueue,
      workflowId: `drain-test-${Date.now()}`,
      args: [{ intervalMs: 10_000, idleWaitMs: 200 }],
    });
    const shards = c.config.DRAIN_SHARDS;
    await seedMinimal(c.pool);
    await eventually(async () => (await c.redis.hget(c.keys.sku('S1'), 'F2'))?.startsWith('3|'), 10_000, 'inserts');

    // A second run started by hand (overlap allow-all) finds the lease held and exits cleanly.
    // (Of the first shard, with several.)
    const second = await pipeline.temporal.client.workflow.execute(drainWorkflow, {
      taskQueue,
      workflowId: `drain-manual-${Date.now()}`,
      args: [{ intervalMs: 10_000, ...(shards > 1 ? { shard: { index: 0, count: shards } } : {}) }],
    });
    expect(second).toMatchObject({ outcome: 'lease-held', holder: first.workflowId });

    await c.pool.query(`update shop.skus set lifecycle = 'discontinued' where sku_id = 'S2'`);
    await c.pool.query(`update shop.inventory set reserved = reserved + 4 where sku_id = 'S1' and fc_id = 'F1'`);
    await c.pool.query(`update shop.fulfillment_centers set daily_capacity = 0 where fc_id = 'F2'`);
    await c.pool.query(`update shop.region_fc set rank = 5 where fc_id = 'F1'`);
    const {
      rows: [o],
    } = await c.pool.query(
      `insert into shop.orders (sku_id, fc_id, qty, status) values ('S1', 'F1', 3, 'placed') returning order_id`,
    );
    await c.pool.query(`insert into shop.orders (sku_id, fc_id, qty, status) values ('S1', 'F1', 2, 'placed')`);
    await c.pool.query(`update shop.orders set status = 'cancelled' where order_id = $1`, [o.order_id]);
    await c.pool.query(`delete from shop.inventory where sku_id = 'S2'`);
    await c.pool.query(`delete from shop.region_fc where fc_id = 'F2'`);
    await c.pool.query(`delete from shop.skus where sku_id = 'S2'`);
    await eventually(inSync, 10_000, 'store to match the source');

    const store = await storeFeatures(c.redis, c.keys);
    expect(store.available.get('S1|F1')).toBe(6);
    expect(store.capacity.get('F2')).toBe(0);
    expect(store.rank.get('R1|F1')).toBe(5);
    expect(store.rank.has('R1|F2')).toBe(false);
    expect(store.lifecycle.has('S2')).toBe(false);
    expect([...store.load.values()]).toEqual([2]);

    // The run would continue-as-new into the next interval forever; `stop` (ops pause) ends it.
    await first.signal(stopDrainSignal);
    const summary = await first.result();
    expect(summary.outcome).toBe('stopped');
    expect(summary.batches).toBeGreaterThan(0);
    expect(await c.pool.query(`select count(*)::int as n from pipeline.leases`)).toMatchObject({ rows: [{ n: 0 }] }); // released

    // The recorded history replays against the current workflow code (determinism).
    const history = await first.fetchHistory();
    await Worker.runReplayHistory({ workflowBundle: { codePath: bundlePath } }, history, first.workflowId);
    if (process.env.RECORD_HISTORIES) {
      // RECORD_HISTORIES=<name>: test/histories/drain-workflow-<name>.json (keep the old ones: they
      // prove that workflows started by older code still replay).
      fs.writeFileSync(
        path.join(__dirname, '..', 'histories', `drain-workflow-${process.env.RECORD_HISTORIES}.json`),
        historyToJSON(history),
      );
    }
  });

  it('applies a stream of changes in a bounded number of activities, and a pause cancels the one running', async () => {
    await seedMinimal(c.pool);
    const shards = c.config.DRAIN_SHARDS;
    const id = `drain-budget-${Date.now()}`;
    // A budget far longer than the test: every batch below runs inside the first activity of each
    // shard, and only the pause (a cancellation the activity learns from a heartbeat) can end it.
    await startDrain(pipeline.temporal.client, c.config, {
      taskQueue,
      workflowId: id,
      args: [{ intervalMs: 60_000, batchSize: 2, activityBudgetMs: 60_000 }],
    });
    for (let i = 0; i < 30; i++) {
      await c.pool.query(`update shop.inventory set reserved = reserved + 1 where sku_id = 'S1' and fc_id = 'F1'`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await eventually(inSync, 10_000, 'store to match the source');

    const handles = Array.from({ length: shards }, (_, index) =>
      pipeline.temporal.client.workflow.getHandle(shards === 1 ? id : `${id}-${index}of${shards}`),
    );
    const pausedAt = Date.now();
    await Promise.all(handles.map((h) => h.signal(stopDrainSignal)));
    const summaries = await Promise.all(handles.map((h) => h.result()));
    expect(Date.now() - pausedAt).toBeLessThan(15_000); // not the 60 s budget
    expect(summaries.every((s) => s.outcome === 'stopped')).toBe(true);
    let activities = 0;
    for (const h of handles) {
      const { events } = await h.fetchHistory();
      activities += (events ?? []).filter(
        (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'drainBatch',
      ).length;
    }
    const batches = summaries.reduce((n, s) => n + s.batches, 0);
    expect(activities).toBe(shards); // one activity per shard, however many batches
    expect(batches).toBeGreaterThanOrEqual(5); // the changes came in many batches
  });

  it('a run the chain continued into drains at once with the lease it holds, and ends if another owner took it', async () => {
    await seedMinimal(c.pool);
    const shards = c.config.DRAIN_SHARDS;
    const id = `drain-chain-${Date.now()}`;
    // runs of 5 s (CHAIN_RUN_MS' least): the chain continues as new while the test watches
    await startDrain(pipeline.temporal.client, c.config, {
      taskQueue,
      workflowId: id,
      args: [{ intervalMs: 5_000, runMs: 5_000, idleWaitMs: 200, activityBudgetMs: 1_000 }],
    });
    const handle = pipeline.temporal.client.workflow.getHandle(shards === 1 ? id : `${id}-0of${shards}`);
    const firstRunId = (await handle.describe()).runId;
    const continuedRunId = await eventually(
      async () => {
        const d = await handle.describe();
        return d.runId !== firstRunId && d.status.name === 'RUNNING' ? d.runId : null;
      },
      20_000,
      'a continued run of the chain',
    );
    await c.pool.query(`update shop.inventory set reserved = reserved + 1 where sku_id = 'S1' and fc_id = 'F1'`);
    await eventually(inSync, 10_000, 'the continued run to apply a change');

    const activityTypes = async (runId: string) => {
      const { events } = await pipeline.temporal.client.workflow.getHandle(handle.workflowId, runId).fetchHistory();
      return (events ?? []).flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
    };
    expect((await activityTypes(firstRunId))[0]).toBe('acquireDrainLease');
    const continued = await activityTypes(continuedRunId);
    expect(continued).not.toContain('acquireDrainLease');
    expect(continued[0]).toBe('drainBatch');

    // Another owner holds the lease (a manual run after it expired, say): the chain's next pass sees
    // it and the chain ends, whichever of its runs is current by then.
    const shard = drainShard(0, shards);
    await c.pool.query(
      `update pipeline.leases set owner = 'someone-else', expires_at = clock_timestamp() + interval '1 minute' where name = $1`,
      [shard.lease],
    );
    const summary = await handle.result();
    expect(summary).toMatchObject({ outcome: 'lease-lost', holder: 'someone-else' });
    await c.pool.query(`delete from pipeline.leases where name = $1`, [shard.lease]);
    for (let i = 1; i < shards; i++) {
      const other = pipeline.temporal.client.workflow.getHandle(`${id}-${i}of${shards}`);
      await other.signal(stopDrainSignal);
      await other.result();
    }
  });

  it('is fired by a Temporal Schedule (skip overlaps), created idempotently', async () => {
    const shards = c.config.DRAIN_SHARDS;
    expect(await ensureSchedules(pipeline.temporal.client, c.config, shards)).toBe('created');
    expect(await ensureSchedules(pipeline.temporal.client, c.config, shards)).toBe('updated');
    // one per drain shard; the first shard's owns partition 0
    const handle = pipeline.temporal.client.schedule.getHandle(drainScheduleIdOf(drainShard(0, shards)));
    try {
      const d = await handle.describe();
      expect(d.policies.overlap).toBe(ScheduleOverlapPolicy.SKIP);
      expect(d.spec.intervals?.[0].every).toBe(5000);
      expect(d.action).toMatchObject({ type: 'startWorkflow', workflowType: 'drainWorkflow', taskQueue });

      await c.pool.query(`insert into shop.fulfillment_centers values ('F5', 'R5', 55, now())`);
      await eventually(
        async () => (await c.redis.hget(c.keys.partitions[0].fc('F5'), 'c'))?.startsWith('55|'),
        15_000,
        'the scheduled drain',
      );
      const runs = (await handle.describe()).info.recentActions;
      expect(runs.length).toBeGreaterThan(0);
      expect(runs[0].action.workflow.workflowId).toMatch(/^drain-/);
      // The compaction schedule comes with it.
      const compaction = await pipeline.temporal.client.schedule.getHandle(names.compactionScheduleId).describe();
      expect(compaction.action).toMatchObject({ workflowType: 'compactionWorkflow', taskQueue });
      // loop bounds travel in the runs' input: a deploy that changes a default leaves runs in flight alone
      expect((compaction.action as { args?: unknown[] }).args).toEqual([
        { maxCalls: WORKFLOW_INPUT_DEFAULTS.compactionMaxCalls },
      ]);
      // Landing and the export run on the batch task queue (a worker process of their own).
      for (const [id, workflowType] of [
        [names.landingScheduleId, 'landingWorkflow'],
        [names.exportScheduleId, 'exportWorkflow'],
      ] as const) {
        expect((await pipeline.temporal.client.schedule.getHandle(id).describe()).action).toMatchObject({
          workflowType,
          taskQueue: batchTaskQueue(c.config),
          args: workflowType === 'landingWorkflow' ? [{ maxCalls: WORKFLOW_INPUT_DEFAULTS.landingMaxCalls }] : [{}],
        });
      }
    } finally {
      await handle.delete();
      await deleteSchedules(pipeline.temporal.client, [...ALL_SCHEDULE_IDS, ...drainScheduleIds(shards)]);
    }
  });
});
