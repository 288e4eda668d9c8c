/**
 * Drain shards (outbox/shards.ts) and changing their number on a live install
 * (activities/drain/reshard.ts): rows are routed as the store hashes SKUs, two workers share the
 * shards and one killed leaves its shards' work to the other, a re-split under traffic with the
 * drains running loses nothing and applies nothing twice, a re-split with no drain running drives
 * the shards itself, runs of retired shards step aside, and what cannot work is refused.
 *
 * The store has 16 partitions here also on one Redis. The starting number of shards is the run's
 * (1 on one Redis, 4 on the cluster run), and the test re-splits to two other numbers.
 */
import fc from 'fast-check';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  catchUpToFreeze,
  type CatchUpProgress,
  freezeForReshard,
  reshardDrain,
  ReshardError,
  splitAtFreeze,
} from '../../activities/drain/reshard';
import { withTransaction } from '../../db/transaction';
import { backfillEverything } from '../support/backfill';
import { loadConfig } from '../../config';
import { drainShards, markSplitting, readDrainLayout, setRoutePartitions } from '../../outbox';
import { compareSnapshots } from '../../reconcile/compare';
import { sourceFeatures } from '../../reconcile/source-features';
import { storeFeatures } from '../../reconcile/store-features';
import { CatalogueSize, seedCatalogue } from '../../simulator/catalogue';
import { runTraffic } from '../../simulator/traffic';
import { storeKeys } from '../../store/keys';
import { activitiesFor } from '../support/activities';
import {
  deleteSchedules,
  eventually,
  pipelineClients,
  resetState,
  sharedTestServer,
  startDrain,
  startWorker,
  temporalClient,
  testClients,
} from '../support/env';
import { seedMinimal } from '../support/source';
import { lowestCursor } from '../../activities/compaction/prune-outbox';
import { syncDrainLayout } from '../../scripts/lib/drain-layout';
import { RESHARD_WORKFLOW_ID } from '../../workflows';
import { ALL_SCHEDULE_IDS, drainScheduleIds, ensureSchedules } from '../../scripts/lib/schedules';
import { appliedRows } from '../support/cursor';
import { exited, spawnWorker } from '../support/worker-process';
import { captured } from '../support/logical-run';
import { FIELD } from '../../store/names';

const c = testClients({ TEMPORAL_TASK_QUEUE: `reshard-${process.pid}`, STORE_PARTITIONS: '16' });
const start = c.config.DRAIN_SHARDS;
// two other numbers of shards: 1 -> 4 -> 2, or 4 -> 2 -> 1
const [first, second] = [4, 2, 1].filter((n) => n !== start);
const size: CatalogueSize = { skus: 300, fcs: 6, regions: 3, fcsPerRegion: 2, fcsPerSku: 3 };
const { address, bundlePath } = sharedTestServer();
let temporal: Awaited<ReturnType<typeof temporalClient>>;

beforeAll(async () => {
  temporal = await temporalClient(address);
});
afterAll(async () => {
  await temporal?.close();
  await c.close();
});
beforeEach(() => resetState(c));

const mismatches = async () => compareSnapshots(await sourceFeatures(c.pool), await storeFeatures(c.redis, c.keys));
const reshardDeps = () => ({ pool: c.workerPool, redis: c.redis, keys: c.keys, config: c.config });
const withShards = (shards: number) => ({ ...c.config, DRAIN_SHARDS: shards });
const drainConsumers = async () =>
  (
    await c.pool.query(
      `select consumer from pipeline.consumer_offsets where consumer like 'redis-online-store%' order by 1`,
    )
  ).rows.map((r) => r.consumer);

describe('routing', () => {
  it('every outbox row of a SKU carries the partition the store hashes that SKU to (any id, any partition count)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 24, unit: 'binary' }), { minLength: 1, maxLength: 20 }),
        fc.constantFrom(2, 3, 16, 1024),
        async (ids, partitions) => {
          // PostgreSQL text holds no NUL; an id is anything else
          const skus = ids.map((s) => s.replaceAll('\u0000', '')).filter((s) => s.length > 0);
          await c.pool.query(`update pipeline.drain_layout set partitions = $1`, [partitions]);
          const r = await c.pool.query(`select s.id, pipeline.sku_route(s.id) as route from unnest($1::text[]) s(id)`, [
            skus,
          ]);
          const keys = storeKeys('x:', partitions);
          for (const row of r.rows) expect(row.route, JSON.stringify(row.id)).toBe(keys.ofSku(row.id).index);
        },
      ),
      { numRuns: 25 },
    );
  });

  it('skus and inventory rows are routed by their SKU, TRUNCATE and the other tables reach every shard', async () => {
    await seedMinimal(c.pool);
    await c.pool.query(`insert into shop.orders (sku_id, fc_id, qty, status) values ('S1', 'F1', 2, 'placed')`);
    await c.pool.query(`truncate shop.orders`);
    await captured(); // (in the logical run the rows reach the outbox a moment later: it failed CI reading 4)
    const rows = (await c.pool.query(`select tbl, op, key, image->>'sku_id' as sku, route from pipeline.outbox`)).rows;
    expect(rows.length).toBeGreaterThan(5);
    for (const r of rows) {
      if ((r.tbl === 'skus' || r.tbl === 'inventory') && r.op !== 'T') expect(r.route).toBe(c.keys.ofSku(r.sku).index);
      else expect(r.route).toBe(-1);
    }
  });
});

describe('workers on several machines', () => {
  it('share the shards through the task queue: one SIGKILLed mid-traffic, the other drains every shard to the rule', async () => {
    const shards = Math.max(start, 4);
    if (shards !== start) await reshardDrain(reshardDeps(), shards);
    const config = withShards(shards);
    const workers = [spawnWorker(config, address, bundlePath), spawnWorker(config, address, bundlePath)];
    const run = await startDrain(temporal.client, config, {
      taskQueue: c.config.TEMPORAL_TASK_QUEUE,
      workflowId: `drain-two-workers-${Date.now()}`,
      args: [{ intervalMs: 600_000, idleWaitMs: 200 }],
    });
    try {
      await seedCatalogue(c.pool, size);
      const traffic = runTraffic(c.pool, { rate: 800, durationMs: 7_000, connections: 4, seed: 33, size });
      // both have been draining for a while
      await eventually(async () => (await appliedRows(c.pool)) > 500, 30_000, 'the drain to apply changes');
      workers[0].kill('SIGKILL');
      await exited(workers[0]);
      await traffic;
      // its activities time out (heartbeat) and are retried by the other worker, its workflow
      // tasks move there too
      await eventually(async () => (await mismatches()).length === 0, 60_000, 'the store to equal the rule');
      expect(workers[1].exitCode).toBeNull();
      expect((await c.pool.query(`select count(*)::int as n from pipeline.dead_letters`)).rows[0].n).toBe(0);
    } finally {
      await run.terminate('test over').catch(() => undefined);
      for (const w of workers) {
        w.kill('SIGTERM');
        await exited(w);
      }
    }
  });
});

describe('changing DRAIN_SHARDS', () => {
  it(`under traffic, with the drains running: ${start} -> ${first} -> ${second} shards, the store ends equal to the rule, nothing applied twice`, async () => {
    const worker = await startWorker(c, address, bundlePath, c.config.TEMPORAL_TASK_QUEUE);
    const runs: { shards: number; run: Awaited<ReturnType<typeof startDrain>> }[] = [];
    const drains = async (shards: number) =>
      runs.push({
        shards,
        run: await startDrain(temporal.client, withShards(shards), {
          taskQueue: c.config.TEMPORAL_TASK_QUEUE,
          workflowId: `drain-reshard-${shards}-${Date.now()}`,
          args: [{ intervalMs: 600_000, idleWaitMs: 200 }],
        }),
      });
    try {
      await seedCatalogue(c.pool, size);
      await drains(start);
      const traffic = runTraffic(c.pool, { rate: 800, durationMs: 9_000, connections: 4, seed: 21, size });
      for (const next of [first, second]) {
        await sleep(2_000);
        const before = runs[runs.length - 1];
        const r = await reshardDrain(reshardDeps(), next, { timeoutMs: 60_000 });
        expect(r).toMatchObject({ from: before.shards, to: next });
        expect(r.frozenAt).not.toBeNull();
        // the old shards' runs are told by their next batch and end
        expect((await before.run.result()).outcome).toBe('retired');
        expect(await drainConsumers()).toEqual(
          drainShards(next)
            .map((s) => s.consumer)
            .sort(),
        );
        await drains(next);
      }
      const stats = await traffic;
      expect(stats.changes).toBeGreaterThan(3_000);
      await eventually(async () => (await mismatches()).length === 0, 60_000, 'the store to equal the rule');
      expect(await readDrainLayout(c.pool)).toMatchObject({ shards: second, frozen: null });
      expect((await c.pool.query(`select count(*)::int as n from pipeline.dead_letters`)).rows[0].n).toBe(0);
    } finally {
      for (const { run } of runs) await run.terminate('test over').catch(() => undefined);
      await worker.stop();
    }
  });

  it('with no drain running, the re-split drives every shard to the freeze itself; a run of the old layout steps aside', async () => {
    await seedMinimal(c.pool);
    const old = activitiesFor(pipelineClients(c));
    await old.acquireDrainLease({ owner: 'old' });
    expect((await old.drainBatch({ owner: 'old' })).rows).toBeGreaterThan(0);
    await old.releaseDrainLease({ owner: 'old' });
    // more changes no drain has applied
    await c.pool.query(`update shop.inventory set on_hand = on_hand + 7`);
    await c.pool.query(`insert into shop.orders (sku_id, fc_id, qty, status) values ('S1', 'F1', 4, 'placed')`);
    await captured(); // (in the logical run: in the outbox, as the trigger capture has them by now)

    const beats: CatchUpProgress[] = [];
    const r = await reshardDrain({ ...reshardDeps(), heartbeat: (d: CatchUpProgress) => void beats.push(d) }, first);
    expect(r.drivenBatches).toBeGreaterThan(0);
    // a heartbeat after each shard's batch (a round of them can outlast the heartbeat timeout)
    expect(beats.filter((b) => b.shard !== undefined).length).toBeGreaterThanOrEqual(r.drivenBatches);
    expect(await mismatches()).toEqual([]); // the old shards applied everything up to the freeze
    expect((await old.drainBatch({ owner: 'old' })).outcome).toBe('retired');
    // a run of the old layout starting now steps aside without leaving a cursor row behind, and a
    // stray row of a retired shard never holds back outbox compaction
    expect((await old.acquireDrainLease({ owner: 'old' })).acquired).toBe(false);
    expect(await drainConsumers()).toEqual(
      drainShards(first)
        .map((s) => s.consumer)
        .sort(),
    );
    const floor = await lowestCursor(c.pool);
    await c.pool.query(`insert into pipeline.consumer_offsets (consumer) values ('redis-online-store/0of7')`);
    expect(await lowestCursor(c.pool)).toBe(floor);
    await c.pool.query(`delete from pipeline.consumer_offsets where consumer = 'redis-online-store/0of7'`);

    await c.pool.query(`update shop.inventory set reserved = reserved + 1`);
    const now = activitiesFor(pipelineClients({ ...c, config: withShards(first) }));
    await now.acquireDrainLease({ owner: 'new' });
    for (;;) if ((await now.drainBatch({ owner: 'new' })).outcome === 'idle') break;
    expect(await mismatches()).toEqual([]);
  });

  it('a partition that lost writes while the shards were frozen: the re-split refuses, lifts the freeze, and the drain repairs it', async () => {
    await seedMinimal(c.pool);
    await captured();
    const r = reshardDrain(reshardDeps(), first, {
      // Redis "restored" one partition to an older position after its shard reached the freeze
      beforeSplit: async () => {
        await c.redis.hset(
          c.keys.partitions[1].pos,
          FIELD.appliedBatch,
          '0',
          FIELD.appliedTxid,
          '0',
          FIELD.appliedId,
          '0',
        );
      },
    });
    await expect(r).rejects.toThrow(/store partition\(s\) 1 do not hold what drain shard \d+ applied/);
    expect(await readDrainLayout(c.pool)).toMatchObject({ shards: start, frozen: null });
    // the drain of the old layout finds the partition behind and repairs it
    const old = activitiesFor(pipelineClients(c));
    await old.acquireDrainLease({ owner: 'old' });
    expect((await old.drainBatch({ owner: 'old' })).outcome).toBe('repaired');
    for (;;) if ((await old.drainBatch({ owner: 'old' })).outcome === 'idle') break;
    await old.releaseDrainLease({ owner: 'old' });
    await expect(reshardDrain(reshardDeps(), first)).resolves.toMatchObject({ to: first });
  });

  // Once the split has begun (positions may be rewritten: `splitting`), it can only go forward. A
  // partition that lost writes then (its node failed over to a replica behind it, or restarted
  // from an older file, between the plan's read and the rewrite) must neither get the split's
  // position over data it lacks (taken for complete, its changes lost for good) nor stop the split
  // (every shard frozen, every read stale): it is rebuilt at the split's position. And a retry of
  // the committed switch (its completion lost) is done, not refused.
  it('a partition that lost writes once the split began is rebuilt after it, and a retry of the done switch succeeds', async () => {
    await seedMinimal(c.pool);
    await captured();
    const deps = reshardDeps();
    const owner = `test-split-${Date.now()}`;
    const frozen = await freezeForReshard(deps, first, owner);
    if (frozen.kind !== 'frozen') throw new Error('expected a freeze');
    await catchUpToFreeze(deps, frozen.snap, owner, 60_000);
    await withTransaction(c.pool, (client) => markSplitting(client, true)); // an earlier attempt began
    await c.redis.hset(c.keys.partitions[1].pos, FIELD.appliedBatch, '0', FIELD.appliedTxid, '0', FIELD.appliedId, '0');
    const firstBatch = await splitAtFreeze(deps, frozen.snap, first, owner);
    expect(await readDrainLayout(c.pool)).toMatchObject({ shards: first, frozen: null });
    // the lost partition: at the split's position, marked for a rebuild, its epoch gone (reads
    // stale); the others kept
    expect(await c.redis.exists(c.keys.partitions[1].epoch)).toBe(0);
    expect(await c.redis.hget(c.keys.partitions[1].pos, FIELD.appliedBatch)).toBe(String(BigInt(firstBatch) - 1n));
    expect(await c.redis.hexists(c.keys.partitions[1].pos, FIELD.rebuilding)).toBe(1);
    expect(await c.redis.exists(c.keys.partitions[0].epoch)).toBe(1);
    // the same step again, as a retry whose first attempt committed
    await expect(splitAtFreeze(deps, frozen.snap, first, owner)).resolves.toBe(firstBatch);
    // the new layout's drain rebuilds it and asks for the refill; once done the store is the rule's
    const now = activitiesFor(pipelineClients({ ...c, config: withShards(first) }));
    await now.acquireDrainLease({ owner: 'new' });
    for (;;) if ((await now.drainBatch({ owner: 'new' })).outcome === 'idle') break;
    await backfillEverything(now, 'test-split-refill', { drainOwner: 'new' });
    for (;;) if ((await now.drainBatch({ owner: 'new' })).outcome === 'idle') break;
    expect(await c.redis.exists(c.keys.partitions[1].epoch)).toBe(1);
    expect(await mismatches()).toEqual([]);
  });

  // A Redis back from a file written while a rebuild ran, or before a TRUNCATE's emptying: its
  // position can equal the shard's cursor, and the split's position reset would remove the mark
  // over what the rebuild left (or what the TRUNCATE removed).
  it.each([
    ['a rebuild that never ended', FIELD.rebuilding],
    ["a TRUNCATE's emptying that never happened", FIELD.truncatePending],
  ])('a partition marked by %s: the re-split refuses, and the drain rebuilds it', async (_what, mark) => {
    await seedMinimal(c.pool);
    await captured();
    const r = reshardDrain(reshardDeps(), first, {
      beforeSplit: async () => void (await c.redis.hset(c.keys.partitions[1].pos, mark, '1')),
    });
    await expect(r).rejects.toThrow(/store partition\(s\) 1 do not hold what drain shard \d+ applied/);
    expect(await readDrainLayout(c.pool)).toMatchObject({ shards: start, frozen: null });
    const old = activitiesFor(pipelineClients(c));
    await old.acquireDrainLease({ owner: 'old' });
    expect((await old.drainBatch({ owner: 'old' })).outcome).toBe('repaired');
    expect(await c.redis.hexists(c.keys.partitions[1].pos, mark)).toBe(0);
    await old.releaseDrainLease({ owner: 'old' });
  });

  it('npm start brings the shards in line with DRAIN_SHARDS through the re-split workflow, without waiting for it', async () => {
    await seedMinimal(c.pool);
    // paused, as an operator may have left them: the re-split's new schedules start nothing here
    await ensureSchedules(temporal.client, c.config, start);
    for (const id of drainScheduleIds(start)) await temporal.client.schedule.getHandle(id).pause('test');
    const worker = await startWorker(c, address, bundlePath, c.config.TEMPORAL_TASK_QUEUE);
    try {
      const before: number[] = [];
      const r = await syncDrainLayout(withShards(first), temporal.client, {
        log: () => undefined,
        beforeReshard: async (n) => void before.push(n),
      });
      expect(r).toMatchObject({ shards: start, reshard: RESHARD_WORKFLOW_ID });
      expect(before).toEqual([start]);
      await temporal.client.workflow.getHandle(RESHARD_WORKFLOW_ID).result();
      expect(await readDrainLayout(c.pool)).toMatchObject({ shards: first, partitions: 16, frozen: null });
      expect(await drainConsumers()).toEqual(
        drainShards(first)
          .map((s) => s.consumer)
          .sort(),
      );
      // nothing to do
      expect(await syncDrainLayout(withShards(first), temporal.client, { log: () => undefined })).toEqual({
        shards: first,
        reshard: null,
      });
    } finally {
      await worker.stop();
      await deleteSchedules(temporal.client, [
        ...ALL_SCHEDULE_IDS,
        ...drainScheduleIds(start),
        ...drainScheduleIds(first),
      ]);
    }
  });

  it('refuses what cannot work: more shards than partitions, another partition count while several shards drain', async () => {
    await expect(reshardDrain(reshardDeps(), 17)).rejects.toThrow(ReshardError);
    await expect(reshardDrain(reshardDeps(), 17)).rejects.toThrow(/need at least 17 store partitions/);
    await reshardDrain(reshardDeps(), 4);
    await expect(setRoutePartitions(c.pool, 32)).rejects.toThrow(/change DRAIN_SHARDS to 1 first/);
    expect(() =>
      loadConfig({ ...process.env, DATABASE_URL: c.config.DATABASE_URL, DRAIN_SHARDS: '4', STORE_PARTITIONS: '2' }),
    ).toThrow(/DRAIN_SHARDS=4: each drain shard owns whole store partitions/);
  });
});
