/**
 * Operating the pipeline through the operator CLI (a real child process) against the real
 * services: pause and catch-up, replay, backfill while the simulator writes, self-healing after
 * Redis loses its data, dead letters, verify, and the CLI's errors and exit codes.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { LIFECYCLE_FIELD } from '../../store/keys';
import { masterNodes } from '../../store/redis-client';
import { backlog as drainBacklog } from '../support/cursor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALL_SCHEDULE_IDS, captureScheduleIds, drainScheduleIds, ensureSchedules } from '../../scripts/lib/schedules';
import { CatalogueSize, seedCatalogue } from '../../simulator/catalogue';
import { runTraffic } from '../../simulator/traffic';
import { names } from '../../config';
import { drainShard } from '../../outbox';
import type { CaptureSourceStatus } from '../../capture/capture-status';
import { AUTO_BACKFILL_ID } from '../../workflows';
import {
  deleteKeys,
  deleteSchedules,
  eventually,
  resetState,
  sharedTestServer,
  startWorker,
  storeKeysOfKind,
  temporalClient,
  testClients,
} from '../support/env';
import { get, startTestApi } from '../support/http';
import { runOps } from '../support/ops-cli';
import { captured, LOGICAL_RUN, trafficTarget, useProductCapture } from '../support/logical-run';

const taskQueue = `ops-${process.pid}`;
const c = testClients({
  TEMPORAL_TASK_QUEUE: taskQueue,
  STALE_AFTER_MS: '1000',
  DRAIN_LEASE_TTL_MS: '2000',
  DRAIN_INTERVAL_MS: '60000',
  BACKFILL_CHUNK_ROWS: '300',
  VERIFY_INTERVAL_MS: '86400000',
});
const { address, bundlePath } = sharedTestServer();
const size: CatalogueSize = { skus: 400, fcs: 6, regions: 3, fcsPerRegion: 2, fcsPerSku: 2 };
let worker: Awaited<ReturnType<typeof startWorker>>;
let temporal: Awaited<ReturnType<typeof temporalClient>>;
let api: Awaited<ReturnType<typeof startTestApi>>;
const ops = (...args: string[]) => runOps(c.config, address, args);
/** The CLI run from a shell whose environment differs from the workers' by `env`. */
const opsWith = (env: Record<string, string>, ...args: string[]) => runOps(c.config, address, args, env);
/** `ops <args> --json`'s output, parsed (a failure shows what the CLI printed on stderr). */
async function opsJson(...args: string[]) {
  const r = await ops(...args, '--json');
  try {
    return JSON.parse(r.stdout);
  } catch {
    throw new Error(`ops ${args.join(' ')} --json (exit ${r.code}) printed no JSON; stderr: ${r.stderr}`);
  }
}

const backlog = () => drainBacklog(c.pool);
/** Every change committed on the source so far is applied (in the logical run: captured first). */
const drained = async () => {
  await captured();
  return (await backlog()) === 0;
};
const stale = async () => (await get(`${api.base}/v1/badges?region=R-00&skus=SKU-0000001`)).body.stale as boolean;
async function verifyClean(): Promise<void> {
  const v = await ops('verify', '--json');
  expect(v.stderr).toBe('');
  const report = JSON.parse(v.stdout); // the report alone: `ops verify --json | jq` works
  expect(report.mismatches).toEqual([]);
  expect(report.checkedSkus).toBe(size.skus);
  expect(v.code).toBe(0);
}
/** A running chain of the pipeline (of its task queue) by the visibility list, or null. */
async function runningChain(type: 'drainWorkflow' | 'captureWorkflow' = 'drainWorkflow'): Promise<string | null> {
  for await (const wf of temporal.client.workflow.list({
    query: `WorkflowType = '${type}' AND ExecutionStatus = 'Running' AND TaskQueue = '${taskQueue}'`,
  }))
    return wf.workflowId;
  return null;
}
const drainRunning = async () => (await runningChain()) !== null;
const schedulesPaused = async (ids: string[]) =>
  Promise.all(ids.map(async (id) => (await temporal.client.schedule.getHandle(id).describe()).state.paused));

/**
 * A drain chain left on a task queue no worker polls (as after a change of TEMPORAL_TASK_QUEUE),
 * holding a lease of the pipeline: the pause's visibility list, limited to the pipeline's task
 * queues, does not show it; its lease names it. It never ends by itself.
 */
async function startOrphanDrain(): Promise<{ workflowId: string; end(): Promise<void> }> {
  const workflowId = `drain-orphan-${Date.now()}`;
  const handle = await temporal.client.workflow.start('drainWorkflow', {
    taskQueue: `${taskQueue}-no-worker`,
    workflowId,
    args: [{ intervalMs: 60_000 }],
  });
  const lease = drainShard(1, 2).lease; // a shard of another layout: no running chain's
  await c.pool.query(
    `insert into pipeline.leases (name, owner, expires_at) values ($1, $2, now() + interval '10 minutes')`,
    [lease, workflowId],
  );
  return {
    workflowId,
    async end() {
      await handle.terminate('test: orphan done').catch(() => undefined);
      await c.pool.query(`delete from pipeline.leases where owner = $1`, [workflowId]);
    },
  };
}

/** Whether the chain's current run has been signalled. */
async function signalled(workflowId: string): Promise<boolean> {
  const history = await temporal.client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? []).some((e) => e.workflowExecutionSignaledEventAttributes);
}

beforeAll(async () => {
  await resetState(c);
  await useProductCapture(c); // the logical run: the capture schedules `ops resume` starts capture
  worker = await startWorker(c, address, bundlePath, taskQueue);
  temporal = await temporalClient(address);
  api = await startTestApi(c.redis, c.keys.prefix, 1000, undefined, c.keys.partitions.length);
  await ensureSchedules(temporal.client, c.config, c.config.DRAIN_SHARDS);
  await seedCatalogue(c.pool, size);
  expect((await ops('resume')).code).toBe(0);
  await eventually(async () => (await drained()) && !(await stale()), 30_000, 'initial drain');
});
afterAll(async () => {
  await ops('pause');
  await deleteSchedules(temporal?.client, [
    ...ALL_SCHEDULE_IDS,
    ...drainScheduleIds(c.config.DRAIN_SHARDS),
    ...captureScheduleIds(c.config),
  ]);
  await api?.close();
  await worker?.stop();
  await temporal?.close();
  await c.close();
});

// The logical run (test/support/logical-run.ts) takes the cases where capture or the sources take
// part; the others (it.skipIf) do not depend on where changes come from, and `.ci/run` has a time limit.
describe('operator CLI', () => {
  it('pause while changes flow: reads stay answering but stale; resume catches up with nothing lost', async () => {
    const traffic = runTraffic(trafficTarget(c.pool), { rate: 800, durationMs: 5000, connections: 4, seed: 21, size });
    const paused = await ops('pause');
    expect(paused.code).toBe(0);
    expect(paused.stdout).toMatch(/drain paused/);
    expect(await drainRunning()).toBe(false);
    await eventually(stale, 10_000, 'reads to say stale');
    const st = await opsJson('status');
    expect(st.drain.schedule).toBe('paused');
    expect(st.lag.stale).toBe(true);
    await traffic;
    const heldBefore: CaptureSourceStatus[] = (await opsJson('status')).capture;
    // More changes once the pause has surely taken effect: under load the CLI's start can take
    // most of the first burst, which the drain then still applied.
    await runTraffic(trafficTarget(c.pool), { rate: 800, durationMs: 2000, connections: 4, seed: 24, size });
    // the changes wait: in the outbox (trigger capture), or in the replication slots (logical),
    // where nothing reads them: no session streams, the outbox position stays, the WAL kept grows
    if (LOGICAL_RUN) {
      const held: CaptureSourceStatus[] = (await opsJson('status')).capture;
      expect(held.map((h) => h.slotState?.active)).toEqual([false, false]);
      expect(held.map((h) => h.lsn)).toEqual(heldBefore.map((h) => h.lsn));
      for (const [i, h] of held.entries())
        expect(h.slotState!.retainedBytes).toBeGreaterThan(heldBefore[i].slotState!.retainedBytes);
    } else expect(await backlog()).toBeGreaterThan(1000);
    // a verify now cannot tell the waiting changes from wrong values: it judges nothing (exit 3)
    const behind = await ops('verify', '--settle-seconds', '1');
    expect(behind.code).toBe(3);
    expect(behind.stdout).toMatch(/0 mismatch\(es\)/);
    expect(behind.stdout).toMatch(/\d+ difference\(s\) left unjudged/);
    expect((await get(`${api.base}/v1/badges?region=R-00&skus=SKU-0000001`)).status).toBe(200); // still answering
    expect((await ops('resume')).code).toBe(0);
    await eventually(drained, 30_000, 'catch-up');
    await eventually(async () => !(await stale()), 10_000, 'fresh again');
    await verifyClean();
    const human = await ops('status');
    expect(human.stdout).toMatch(/drain schedule\s+active/);
    expect(human.stdout).toMatch(/freshness\s+fresh/);
  });

  // The visibility list is eventually consistent: a run it shows as running may have ended by the
  // time it is signalled. Here the orphan ends (terminated) once the pause has signalled the
  // pipeline's chain, which an older pause signalled first (the newest run) and waited for.
  it.skipIf(LOGICAL_RUN)(
    'pause: a run that ends while the pause signals the chains is no error; each chain is seen ended',
    async () => {
      expect((await ops('pause')).code).toBe(0);
      const orphan = await startOrphanDrain();
      try {
        expect((await ops('resume')).code).toBe(0); // a chain newer than the orphan
        const chain = await eventually(runningChain, 15_000, 'the resumed drain chain');
        const pausing = ops('pause');
        await eventually(() => signalled(chain), 30_000, 'the pause to signal the chain');
        await orphan.end();
        const paused = await pausing;
        expect(paused.stderr).toBe('');
        expect(paused.code).toBe(0);
        expect(paused.stdout).toContain(chain);
        expect(await drainRunning()).toBe(false);
      } finally {
        await orphan.end();
        expect((await ops('resume')).code).toBe(0);
      }
    },
  );

  it.skipIf(LOGICAL_RUN)(
    'pause names a chain still running after --wait and exits 1 (found by its lease alone); the schedules stay paused',
    async () => {
      const orphan = await startOrphanDrain();
      try {
        const paused = await ops('pause', '--wait', '5');
        expect(paused.code).toBe(1);
        expect(paused.stderr).toContain(`still running 5 s after the stop signal: ${orphan.workflowId}`);
        expect(paused.stdout).toMatch(/^drain paused; stopped drain-/); // the pipeline's own chain did stop
        expect(paused.stdout).not.toContain(orphan.workflowId);
        expect(await drainRunning()).toBe(false);
        expect(await schedulesPaused(drainScheduleIds(c.config.DRAIN_SHARDS))).not.toContain(false);
      } finally {
        await orphan.end();
        expect((await ops('resume')).code).toBe(0);
      }
    },
  );

  // The capture schedules are the ones there are, not the ones the CLI's own CAPTURE_MODE names.
  it.skipIf(LOGICAL_RUN)(
    'pause and resume from a shell whose CAPTURE_MODE=logical names a capture schedule that does not exist',
    async () => {
      const shell = { CAPTURE_MODE: 'logical' };
      const missing = `${names.captureScheduleIdPrefix}shop`;
      const drains = drainScheduleIds(c.config.DRAIN_SHARDS);
      const paused = await opsWith(shell, 'pause');
      expect(paused.code).toBe(0);
      expect(paused.stdout).toMatch(/^drain paused/);
      expect(paused.stdout).toContain(`no capture schedule ${missing}`);
      expect(await schedulesPaused(drains)).not.toContain(false);
      const st = JSON.parse((await opsWith(shell, 'status', '--json')).stdout);
      expect(st.capture).toEqual([expect.objectContaining({ source: 'shop', schedule: 'missing' })]);
      const resumed = await opsWith(shell, 'resume');
      expect(resumed.code).toBe(0);
      expect(resumed.stdout).toMatch(/^drain resumed/);
      expect(await schedulesPaused(drains)).not.toContain(true);
      await eventually(drainRunning, 15_000, 'the drain to run again');
    },
  );

  it.runIf(LOGICAL_RUN)(
    'pause and resume from a shell without CAPTURE_MODE=logical stop and start the capture schedules there are',
    async () => {
      const shell = { CAPTURE_MODE: 'trigger', INVENTORY_DATABASE_URL: '', ORDERS_DATABASE_URL: '' };
      const captures = captureScheduleIds(c.config);
      const paused = await opsWith(shell, 'pause');
      expect(paused.code).toBe(0);
      expect(paused.stdout).toMatch(/^capture and drain paused/);
      expect(await schedulesPaused(captures)).toEqual(captures.map(() => true));
      expect(await runningChain('captureWorkflow')).toBeNull();
      // the changes wait in the slots: no session reads them
      const held: CaptureSourceStatus[] = (await opsJson('status')).capture;
      expect(held.map((h) => h.slotState?.active)).toEqual([false, false]);
      await runTraffic(trafficTarget(c.pool), { rate: 300, durationMs: 1000, connections: 2, seed: 25, size });
      // that shell has no database for the sources: their schedules are listed, their slots not read
      const st = JSON.parse((await opsWith(shell, 'status', '--json')).stdout);
      expect(st.capture.map((s: { source: string; schedule: string }) => `${s.source} ${s.schedule}`).sort()).toEqual([
        'inventory paused',
        'orders paused',
      ]);
      expect(st.capture.every((s: CaptureSourceStatus) => s.unread)).toBe(true);
      const resumed = await opsWith(shell, 'resume');
      expect(resumed.code).toBe(0);
      expect(resumed.stdout).toMatch(/^capture \(from the last confirmed position of each slot\) and drain resumed/);
      expect(await schedulesPaused(captures)).toEqual(captures.map(() => false));
      await eventually(drained, 30_000, 'capture and drain to catch up');
      await eventually(async () => !(await stale()), 10_000, 'fresh again');
    },
  );

  it.skipIf(LOGICAL_RUN)('replay from a position re-writes values that faulty logic got wrong', async () => {
    const key = c.keys.sku('SKU-0000003');
    const fields = await c.redis.hgetall(key);
    const [fc, raw] = Object.entries(fields).find(([f]) => f !== LIFECYCLE_FIELD)!;
    const [, version] = raw.split('|');
    await c.redis.hset(key, fc, `12345|${version}`); // same version, wrong value
    expect((await ops('verify')).code).toBe(1);
    const r = await ops('replay', '--from', 'start');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/replay started: workflow replay-0-0-/);
    expect(r.stdout).toMatch(/replayed \d+ changes/);
    expect(await c.redis.hget(key, fc)).toBe(raw);
    await verifyClean();
  });

  it('a backfill while the simulator writes loses nothing and overwrites nothing newer', async () => {
    // As for a new store: the SKU features are gone (the epoch stays: the drain goes on as usual).
    await deleteKeys(c.redis, await storeKeysOfKind(c, 's'));
    const traffic = runTraffic(trafficTarget(c.pool), { rate: 600, durationMs: 4000, connections: 4, seed: 22, size });
    // (--rate 0: no limit, as BACKFILL_ROWS_PER_S=0 says)
    const r = await ops('backfill', '--chunk', '100', '--rate', '0');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/backfill done: \d+ source rows/);
    await traffic;
    await eventually(drained, 30_000, 'drain to catch up');
    await verifyClean();
  });

  it('Redis emptied (FLUSHDB): noticed by itself, reads stale, rebuilt by backfill-auto, then fresh and equal to the source', async () => {
    // Every master of a cluster (one Redis: the one). FLUSHDB, not FLUSHALL: what the store sees is
    // the same, and the other databases of the shared local Redis (a benchmark's db 14) are left alone.
    await Promise.all(masterNodes(c.redis).map((node) => node.flushdb()));
    await eventually(stale, 5_000, 'stale after the flush');
    const traffic = runTraffic(trafficTarget(c.pool), { rate: 300, durationMs: 2000, connections: 2, seed: 23, size });
    const auto = await eventually(
      async () => {
        try {
          return await temporal.client.workflow.getHandle(AUTO_BACKFILL_ID).describe();
        } catch {
          return null;
        }
      },
      15_000,
      'the drain to start backfill-auto',
    );
    expect(auto.type).toBe('backfillWorkflow');
    await temporal.client.workflow.getHandle(AUTO_BACKFILL_ID).result();
    await traffic;
    await eventually(async () => (await drained()) && !(await stale()), 30_000, 'fresh again');
    expect(await c.redis.exists(c.keys.partitions[0].epoch)).toBe(1);
    await verifyClean();
  });

  it.skipIf(LOGICAL_RUN)(
    'dead letters: listed, retried after the cause is fixed, counted; the drain never stopped',
    async () => {
      await c.pool.query(
        `insert into pipeline.outbox (tbl, op, key, image) values ('skus', 'U', 'SKU-0000009', '{"sku_id": "SKU-0000009", "lifecycle": "on-holiday"}')`,
      );
      await c.pool.query(`update shop.skus set lifecycle = 'paused' where sku_id = 'SKU-0000010'`);
      await eventually(
        async () => (await c.redis.hget(c.keys.sku('SKU-0000010'), LIFECYCLE_FIELD))?.startsWith('p|'),
        10_000,
        'later change applied',
      );
      const list = await ops('dead-letters', 'list', '--json');
      expect(list.code).toBe(0);
      const dl = JSON.parse(list.stdout);
      expect(dl.total).toBe(1);
      expect(dl.rows[0]).toMatchObject({ key: 'SKU-0000009', error: expect.stringMatching(/lifecycle/) });
      expect((await ops('dead-letters', 'retry')).code).toBe(1); // still malformed
      await c.pool.query(`update pipeline.dead_letters set image = jsonb_set(image, '{lifecycle}', '"paused"')`); // the fix
      const retry = await ops('dead-letters', 'retry');
      expect(retry.stdout).toMatch(/1 applied, 0 still failing/);
      expect(retry.code).toBe(0);
      expect(await c.redis.hget(c.keys.sku('SKU-0000009'), LIFECYCLE_FIELD)).toMatch(/^p\|/);
      expect((await opsJson('dead-letters', 'list')).total).toBe(0);
      const metrics = await get(`${api.base}/metrics`);
      expect(metrics.status).toBe(200);
    },
  );

  it('the scheduled sampled verify finds what differs and repairs it through the outbox', async () => {
    // Damage of every kind verify looks at, none of it newer than the source's versions.
    const sku5 = c.keys.sku('SKU-0000005');
    const [fc5, raw5] = Object.entries(await c.redis.hgetall(sku5)).find(([f]) => f !== LIFECYCLE_FIELD)!;
    await c.redis.hset(sku5, fc5, `4242|${raw5.split('|')[1]}`); // wrong stock, same version
    await c.redis.hdel(c.keys.sku('SKU-0000006'), LIFECYCLE_FIELD); // lifecycle lost
    const sku7 = await c.redis.hgetall(c.keys.sku('SKU-0000007'));
    const extraFc = ['FC-000', 'FC-001', 'FC-002', 'FC-003', 'FC-004', 'FC-005'].find((f) => !(f in sku7))!;
    await c.redis.hset(c.keys.sku('SKU-0000007'), extraFc, '9|1'); // stock the source does not have
    const cap = await c.redis.hget(c.keys.partitions[0].fc('FC-001'), 'c');
    await c.redis.hset(c.keys.partitions[0].fc('FC-001'), 'c', `0|${cap!.split('|')[1]}`); // capacity 0
    const [loadKey] = await storeKeysOfKind(c, 'l');
    await c.redis.hincrby(loadKey, 'n', 5); // a load counted twice

    const started = Date.now();
    await temporal.client.schedule.getHandle(names.verifyScheduleId).trigger();
    const run = await eventually(
      async () => {
        for await (const w of temporal.client.workflow.list({
          query: `WorkflowType = 'sampledVerifyWorkflow' AND TaskQueue = '${taskQueue}'`,
        }))
          if (w.startTime.getTime() >= started - 1000) return w;
        return null;
      },
      15_000,
      'the scheduled verify to start',
    );
    const result = await temporal.client.workflow.getHandle(run.workflowId).result();
    expect(result.mismatchCount).toBeGreaterThanOrEqual(5);
    expect([...new Set(result.mismatches.map((m: { feature: string }) => m.feature))]).toEqual(
      expect.arrayContaining(['available', 'lifecycle', 'capacity', 'load']),
    );
    expect(result.reemitted.deleted).toBe(1);
    expect(result.reemitted.refreshed).toBeGreaterThanOrEqual(3);
    expect(result.loadCounters).toBeGreaterThan(0);
    // The repairs went through the outbox: the drain applies them, and the store equals the source.
    await eventually(drained, 30_000, 'the drain to apply the repairs');
    await verifyClean();
  });

  it.skipIf(LOGICAL_RUN)(
    'the Web UI needs no query: the drain shows its current details, operator workflows a summary and who asked',
    async () => {
      await ops('verify', '--sample', '5', '--json');
      let verify: string | undefined;
      for await (const w of temporal.client.workflow.list({
        query: `WorkflowType = 'verifyWorkflow' AND TaskQueue = '${taskQueue}'`,
      }))
        verify ??= w.workflowId;
      const d = await temporal.client.workflow.getHandle(verify!).describe();
      expect(await d.staticSummary()).toBe('Verify of 5 random SKUs, every FC, region and load');
      expect(await d.staticDetails()).toMatch(
        /^Started by .+@.+ with `npm run ops -- verify --sample 5 --json` at \d{4}-/,
      );
      let drain: string | undefined;
      for await (const w of temporal.client.workflow.list({
        query: `WorkflowType = 'drainWorkflow' AND ExecutionStatus = 'Running' AND TaskQueue = '${taskQueue}'`,
      }))
        drain ??= w.workflowId;
      const metadata = await eventually(
        async () => {
          const m = (await temporal.client.workflow.getHandle(drain!).query('__temporal_workflow_metadata')) as {
            currentDetails?: string;
          };
          return m.currentDetails ? m : null;
        },
        10_000,
        'the drain to report its details',
      );
      expect(metadata.currentDetails).toMatch(
        /^(shard \d+ of \d+ · )?(caught up|CATCHING UP|BEHIND by about [\d,]+\+? rows, catching up)( · newest change applied \d+(\.\d)? (ms|s) after it was written)? · this run: [\d,]+ rows in [\d,]+ batches, [\d,]+ dead letters · batch size [\d,]+/,
      );
    },
  );

  it('inspect shows store, source and badges agreeing', async () => {
    const r = await ops('inspect', 'SKU-0000001', '--json');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.source.sku.sku_id).toBe('SKU-0000001');
    expect(out.badges.length).toBe(size.regions);
    expect(out.badges.every((b: { agree: boolean }) => b.agree)).toBe(true);
  });

  it.skipIf(LOGICAL_RUN)(
    'reshard: the number of drain shards changes under traffic, status shows each shard, nothing lost',
    async () => {
      expect((await ops('reshard', '--shards', '0')).code).toBe(2);
      // longer than the catch-up activity's hour: each attempt restarted its own clock, for good
      const long = await ops('reshard', '--shards', '2', '--timeout', '7200');
      expect(long.code).toBe(2);
      expect(long.stderr).toMatch(/--timeout/);
      const start = c.config.DRAIN_SHARDS;
      const partitions = c.keys.partitions.length;
      if (partitions === 1) {
        // one Redis with one partition: a shard owns whole partitions
        const refused = await ops('reshard', '--shards', '2');
        expect(refused.code).toBe(1);
        expect(refused.stderr).toMatch(/2 drain shards need at least 2 store partitions/);
        return;
      }
      const other = start === 2 ? 4 : 2;
      for (const [from, to] of [
        [start, other],
        [other, start],
      ]) {
        const traffic = runTraffic(trafficTarget(c.pool), {
          rate: 500,
          durationMs: 3000,
          connections: 4,
          seed: 30 + to,
          size,
        });
        await sleep(500);
        const r = await ops('reshard', '--shards', String(to), '--json');
        expect(r.code).toBe(0);
        expect(JSON.parse(r.stdout)).toMatchObject({ from, to, triggered: drainScheduleIds(to) });
        const st = await opsJson('status');
        expect(st.drain.shards).toBe(to);
        expect(st.drain.perShard).toHaveLength(to);
        await traffic;
        await eventually(drained, 30_000, 'catch-up after the re-split');
      }
      expect((await ops('status')).stdout).toMatch(start === 1 ? /lease/ : /drain shards\s+\d/);
      await eventually(async () => !(await stale()), 10_000, 'fresh again');
      await verifyClean();
    },
  );

  it.skipIf(LOGICAL_RUN)('bad flags and unreachable services: clear errors and exit codes', async () => {
    // (independent runs, none changes anything: run together, as each costs a process start)
    const [bad, sample, settle, unknown, retry, down, badEnv] = await Promise.all([
      ops('replay', '--from', 'yesterday'),
      ops('verify', '--sample', '-3'),
      ops('verify', '--settle-seconds', '91'),
      ops('frobnicate'),
      ops('dead-letters', 'retry', '--id', 'x1'),
      runOps(c.config, '127.0.0.1:1', ['pause']),
      runOps(c.config, address, ['status'], { DRAIN_BATCH_SIZE: 'many' }),
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/not a position/);
    expect(sample.code).toBe(2);
    expect(settle.code).toBe(2);
    expect(settle.stderr).toMatch(/--settle-seconds must be a whole number from 1 to 90/);
    expect(unknown.code).toBe(2);
    expect(retry.code).toBe(2);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/Temporal is not reachable at 127\.0\.0\.1:1/);
    expect(badEnv.code).toBe(2);
    expect(badEnv.stderr).toMatch(/DRAIN_BATCH_SIZE/);
  });
});
