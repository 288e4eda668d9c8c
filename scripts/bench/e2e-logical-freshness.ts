/**
 * Section 1 of `npm run bench:e2e-logical`: freshness through the slots under sustained load from
 * the split simulator and from pgbench per source, with a write transaction held open on each
 * source for the whole section.
 */
import { temporalActionsBetween } from './temporal-actions';
import { setTimeout as sleep } from 'node:timers/promises';
import { readSlot } from '../../capture/slot';
import { names } from '../../config';
import { readCursor } from '../../outbox';
import { regionId } from '../../simulator/catalogue';
import { runTraffic } from '../../simulator/traffic';
import { masterNodes } from '../../store/redis-client';
import { withClient } from '../lib/source-databases';
import { cpuBetween, sampleCpu } from './cpu';
import { secondsUntilCaughtUp } from './drain-progress';
import type { Freshness, LogicalFreshnessRun, LogicalRun, Options } from './e2e-logical-types';
import { HELD_PROBE, HeldTransaction, holdOpenTransaction, holdOpenWrite, probeUnderLoad } from './freshness-probes';
import { LOGICAL_INVENTORY_URL, LOGICAL_ORDERS_URL, LogicalBench } from './logical-env';
import { runPgbench } from './pgbench-load';

const log = (s: string) => process.stderr.write(`${s}\n`);

/** A write transaction held open on each source: a SKU row updated, an order inserted. */
async function holdOpenOnEachSource(lb: LogicalBench): Promise<HeldTransaction> {
  const inventory = await holdOpenTransaction({ pool: lb.inventory }, HELD_PROBE);
  const orders = await holdOpenWrite(
    lb.orders,
    `insert into shop.orders (sku_id, fc_id, qty, status) values ($1, 'FC-000', 1, 'placed')`,
    [HELD_PROBE],
  );
  return {
    async release() {
      await inventory.release();
      await orders.release();
    },
  };
}

/** pgbench against each source, half the rate each (inventory reservations; order inserts); the achieved changes/s. */
async function pgbenchOnBoth(run: LogicalRun, rate: number, seconds: number): Promise<number> {
  const common = { seconds, skus: run.actual.skus, fcs: run.actual.fcs, clients: 8 };
  const [inventory, orders] = await Promise.all([
    runPgbench({ ...common, databaseUrl: LOGICAL_INVENTORY_URL, workload: 'inventory-reserve', changesPerS: rate / 2 }),
    runPgbench({ ...common, databaseUrl: LOGICAL_ORDERS_URL, workload: 'order-insert', changesPerS: rate / 2 }),
  ]);
  return inventory.changesPerS + orders.changesPerS;
}

/** One rate: probes while the load runs, the CPU it took, and how long the pipeline needed to catch up after it. */
async function probeRun(
  run: LogicalRun,
  seconds: number,
  spec: { source: string; rate: number },
  startLoad: () => Promise<number>,
  warmupSeconds = 0,
): Promise<LogicalFreshnessRun> {
  const { lb, pipeline } = run;
  log(
    `freshness at ${spec.rate} changes/s (${spec.source}, a write transaction held open on each source) for ${seconds} s ...`,
  );
  const vouched: number[] = [];
  const redis = masterNodes(lb.redis);
  const count0 = await pipelineCounts(lb);
  const from = new Date();
  const cpu0 = await sampleCpu({ ...pipeline.pids, bench: process.pid }, redis);
  const r = await probeUnderLoad(
    { pool: lb.inventory },
    pipeline.apiPort,
    seconds,
    { ...spec, open: true },
    startLoad,
    {
      vouched,
      region: regionId(0),
      warmupSeconds,
    },
  );
  const cpu1 = await sampleCpu({ ...pipeline.pids, bench: process.pid }, redis);
  const count1 = await pipelineCounts(lb);
  const temporal = await temporalActionsBetween(pipeline.temporal, from, new Date());
  const tEnd = performance.now();
  const caughtUpAfter = await secondsUntilCaughtUp(lb, tEnd, 300);
  const cpu = cpuBetween(cpu0, cpu1);
  const perS = (k: keyof typeof count0) => (count1[k] - count0[k]) / cpu.seconds;
  return {
    ...r,
    vouched,
    caughtUpAfter,
    cpu,
    drainBatchesPerS: perS('batches'),
    commitsPerS: perS('commits'),
    temporal,
  };
}

/** The drain's completed batches so far, and the pipeline database's commits (capture's outbox writes, the drain, leases …). */
async function pipelineCounts(lb: LogicalBench): Promise<{ batches: number; commits: number }> {
  const r = await lb.pool.query(
    `select (select xact_commit from pg_stat_database where datname = current_database())::float8 as commits`,
  );
  return { batches: Number((await readCursor(lb.pool, names.drainConsumer)).batch), commits: r.rows[0].commits };
}

/** No load for `seconds`: the probes alone (what freshness through the slots is without load, and the rig's own CPU). */
const idle = (seconds: number) => () => sleep(seconds * 1000).then(() => 0);

/** WAL each source's slot keeps now (bytes). */
async function retainedWal(lb: LogicalBench): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const s of lb.sources)
    out[s.name] = await withClient(lb.ownerUrl[s.name]!, async (c) => (await readSlot(c, s.slot)).retainedBytes);
  return out;
}

/** Checkpoints the server has run since it started (timed and requested), and its max_wal_size. */
async function checkpointCount(lb: LogicalBench): Promise<{ count: number; maxWalSize: string }> {
  const r = await lb.pool.query(
    `select (checkpoints_timed + checkpoints_req)::int as count, current_setting('max_wal_size') as max from pg_stat_bgwriter`,
  );
  return { count: r.rows[0].count, maxWalSize: r.rows[0].max };
}

/** 1. Freshness at each simulator rate, then each pgbench rate, with a transaction held open on each source throughout. */
export async function measureFreshness(run: LogicalRun, o: Options): Promise<Freshness> {
  const { lb, actual } = run;
  const runs: LogicalFreshnessRun[] = [];
  // each load runs its warm-up, then the measured seconds
  const loadSeconds = o.seconds + o.warmupSeconds;
  const held = await holdOpenOnEachSource(lb);
  const checkpointsBefore = await checkpointCount(lb);
  let retained: Record<string, number>;
  try {
    if (o.idleSeconds > 0)
      runs.push(await probeRun(run, o.idleSeconds, { source: 'none (probes only)', rate: 0 }, idle(o.idleSeconds)));
    for (const rate of o.rates) {
      const simulator = () =>
        runTraffic(
          { inventory: lb.inventory, orders: lb.orders },
          // (16 connections: an order is two transactions here, one per database)
          { rate, durationMs: loadSeconds * 1000, connections: 16, seed: rate, size: actual },
        ).then((stats) => stats.changes / (stats.elapsedMs / 1000));
      runs.push(await probeRun(run, o.seconds, { source: 'simulator (split)', rate }, simulator, o.warmupSeconds));
    }
    for (const rate of o.pgbenchRates)
      runs.push(
        await probeRun(
          run,
          o.seconds,
          { source: 'pgbench per source', rate },
          () => pgbenchOnBoth(run, rate, loadSeconds),
          o.warmupSeconds,
        ),
      );
    retained = await retainedWal(lb);
  } finally {
    await held.release();
  }
  const checkpointsAfter = await checkpointCount(lb);
  return {
    runs,
    retained,
    checkpoints: { count: checkpointsAfter.count - checkpointsBefore.count, maxWalSize: checkpointsAfter.maxWalSize },
  };
}
