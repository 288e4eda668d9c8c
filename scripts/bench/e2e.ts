/**
 * `npm run bench`: end-to-end performance on this machine, everything co-located, in one run:
 *   0. the machine's own limits, measured in the same run (machine-limits.ts): every figure below
 *      is printed beside the limit that bounds it, as a ratio
 *   1. freshness: source commit -> visible through the read API, at sustained rates from the
 *      Node simulator (default 500 and 2,000 changes/s), the 2,000 row again with a write
 *      transaction held open for the whole run, and from pgbench (default 2,000 to 15,000
 *      changes/s, each with the open transaction held): the highest rate with p99 under 250 ms
 *   2. catch-up: a backlog of 1,000,000 changes built while the drain is paused, then resumed:
 *      changes/s until caught up, and the time until reads are fresh again
 *   3. OLTP overhead: order-service transactions/s with the capture triggers and without
 *   4. online store memory per SKU·FC, and 5. reads (library), on the same catalogue
 * Everything it loads is ANALYZEd (this machine's PostgreSQL runs without autovacuum).
 * The real parts run as in production: a Temporal dev server, the worker process (drain workflow
 * started by the schedule), the read API process; the simulator and probes run here.
 * Uses its own database (fresh_badges_bench), Redis db 14 and Temporal server; loads the catalogue
 * (default 1,000,000 SKUs x 3 FCs) through the pipeline if it is not there yet.
 */
import { setEpoch } from '../../store/watermark';
import { ScheduleHandle, ScheduleOverlapPolicy } from '@temporalio/client';
import { Command } from 'commander';
import { Config, names } from '../../config';
import { createActivities } from '../../activities';
import { localActivities } from '../lib/local-activities';
import { createBadgeReader } from '../../serving/badge-reader';
import { CatalogueSize, readCatalogueSize, regionId, skuId } from '../../simulator/catalogue';
import { rng, runTraffic } from '../../simulator/traffic';
import { stopDrainSignal } from '../../workflows';
import { nonNegativeInt } from '../lib/cli-args';
import { benchConfig, ensureCatalogue, openBench, Bench } from './bench-env';
import { MachineLimits, machineLimitRows, measureMachineLimits, outboxScanRowsPerS } from './machine-limits';
import { runPgbench } from './pgbench-load';
import { BenchPipeline, startBenchPipeline } from './processes';
import {
  deleteProbeSkus,
  FRESHNESS_HEADERS,
  FreshnessRun,
  freshnessRows,
  HELD_PROBE,
  holdOpenTransaction,
  insertProbeSkus,
  probeUnderLoad as probeLoad,
} from './freshness-probes';
import {
  backlog,
  settlePipeline,
  secondsUntilCaughtUp,
  secondsUntilFresh,
  waitForDrain,
  waitForLanding,
} from './drain-progress';
import { int, ms, percentiles, table } from './stats';

interface Options {
  skus: number;
  rates: string;
  openRate: number;
  pgbenchRates: string;
  seconds: number;
  warmupSeconds: number;
  backlog: number;
  oltpSeconds: number;
  drainActivityBudgetMs: number;
}

/** What the phases share: the bench database and store, the catalogue as loaded, the running pipeline. */
interface Run {
  b: Bench;
  config: Config;
  actual: CatalogueSize;
  pipeline: BenchPipeline;
  /** The landing consumer's schedule (it lands the drain's changes as Parquet for the nightly export). */
  landing: ScheduleHandle;
}

type Row = (string | number)[];

const log = (s: string) => process.stderr.write(`${s}\n`);

const ratio = (v: number, limit: number) => `${((v / limit) * 100).toFixed(0)}%`;

function parseOptions(): Options {
  return new Command()
    .option('--skus <n>', 'catalogue size', (v) => Number(v), 1_000_000)
    .option('--rates <list>', 'simulator change rates to probe (changes/s)', '500,2000')
    .option(
      '--open-rate <n>',
      'simulator rate of the row with a write transaction held open (0: none)',
      (v) => Number(v),
      2000,
    )
    .option(
      '--pgbench-rates <list>',
      'pgbench change rates to probe, each with a transaction held open (changes/s)',
      '2000,5000,10000,15000',
    )
    .option('--seconds <s>', 'seconds per rate', (v) => Number(v), 30)
    .option(
      '--warmup-seconds <s>',
      'seconds each load runs before the measured seconds (their probes are reported apart)',
      nonNegativeInt('--warmup-seconds'),
      5,
    )
    .option('--backlog <n>', 'changes in the catch-up backlog', (v) => Number(v), 1_000_000)
    .option('--oltp-seconds <s>', 'seconds per OLTP overhead run', (v) => Number(v), 30)
    .option(
      '--drain-activity-budget-ms <n>',
      'DRAIN_ACTIVITY_BUDGET_MS of the pipeline (0: one drain batch per activity, as before ADR 0012)',
      nonNegativeInt('--drain-activity-budget-ms'),
      5000,
    )
    .parse()
    .opts<Options>();
}

/** The catalogue loaded (through the pipeline, if it is not there yet) and ANALYZEd; returns its actual size. */
async function prepareCatalogue(b: Bench, size: CatalogueSize): Promise<CatalogueSize> {
  await ensureCatalogue(b, size, log);
  const actual = await readCatalogueSize(b.pool);
  await setEpoch(b.redis, b.keys, 'bench'); // loaded through the pipeline: complete
  log('ANALYZE of the bench database (no autovacuum here) ...');
  await b.pool.query('analyze');
  return actual;
}

/**
 * Probes freshness for `seconds` while `startLoad` runs (its promise: the achieved changes/s),
 * with a write transaction held open if `spec.open`; then waits for the drain to catch up.
 */
async function probeUnderLoad(
  run: Run,
  seconds: number,
  spec: Pick<FreshnessRun, 'source' | 'rate' | 'open'>,
  startLoad: () => Promise<number>,
  warmupSeconds: number,
): Promise<FreshnessRun> {
  const { b, pipeline } = run;
  log(
    `freshness at ${spec.rate} changes/s (${spec.source}${spec.open ? ', a write transaction held open' : ''}) for ${seconds} s ...`,
  );
  const hold = spec.open ? () => holdOpenTransaction(b, HELD_PROBE) : undefined;
  const r = await probeLoad(b, pipeline.apiPort, seconds, spec, startLoad, {
    hold,
    region: regionId(0),
    warmupSeconds,
  });
  await waitForDrain(b, 200);
  return r;
}

/** 1. Freshness under sustained load: the simulator's rates, then pgbench's (each with a transaction held open). */
async function measureFreshness(run: Run, o: Options): Promise<FreshnessRun[]> {
  const { b, config, actual } = run;
  const runs: FreshnessRun[] = [];
  // each load runs its warm-up, then the measured seconds
  const loadSeconds = o.seconds + o.warmupSeconds;
  const simulatorRuns = [
    ...o.rates
      .split(',')
      .filter(Boolean)
      .map((r) => ({ rate: Number(r), open: false })),
    ...(o.openRate > 0 ? [{ rate: o.openRate, open: true }] : []),
  ];
  for (const { rate, open } of simulatorRuns) {
    const simulator = () =>
      runTraffic(b.pool, { rate, durationMs: loadSeconds * 1000, connections: 8, seed: rate, size: actual }).then(
        (stats) => stats.changes / (stats.elapsedMs / 1000),
      );
    runs.push(await probeUnderLoad(run, o.seconds, { source: 'simulator', rate, open }, simulator, o.warmupSeconds));
  }
  for (const rate of o.pgbenchRates.split(',').filter(Boolean).map(Number)) {
    const pgbench = () =>
      runPgbench({
        databaseUrl: config.DATABASE_URL,
        changesPerS: rate,
        seconds: loadSeconds,
        skus: actual.skus,
        fcs: actual.fcs,
      }).then((stats) => stats.changesPerS);
    runs.push(await probeUnderLoad(run, o.seconds, { source: 'pgbench', rate, open: true }, pgbench, o.warmupSeconds));
  }
  return runs;
}

/** The drain stopped: its schedule paused, and every running drain workflow signalled to stop and finished. */
async function pauseDrain(run: Run, why: string): Promise<void> {
  const { temporal, schedule } = run.pipeline;
  await schedule.pause(why);
  for await (const wf of temporal.workflow.list({
    query: `WorkflowType = 'drainWorkflow' AND ExecutionStatus = 'Running'`,
  })) {
    const h = temporal.workflow.getHandle(wf.workflowId);
    await h.signal(stopDrainSignal);
    await h.result().catch(() => undefined);
  }
}

/** Restocking in transactions of 1,000 SKUs (every FC of each), from 4 connections; returns the seconds it took. */
async function writeRestocks(b: Bench, actual: CatalogueSize, changes: number): Promise<number> {
  const skusPerTx = 1000;
  const writers = 4;
  let written = 0;
  let next = 0;
  const tWrite = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (written < changes) {
        const from = next % actual.skus;
        next += skusPerTx;
        const r = await b.pool.query(
          `update shop.inventory set on_hand = on_hand + 1, updated_at = now() where sku_id >= 'SKU-' || lpad($1::text, 7, '0') and sku_id <= 'SKU-' || lpad($2::text, 7, '0')`,
          [from, Math.min(actual.skus - 1, from + skusPerTx - 1)],
        );
        written += r.rowCount ?? 0;
      }
    }),
  );
  return (performance.now() - tWrite) / 1000;
}

interface CatchUp {
  /** Changes in the backlog. */
  before: number;
  writeSeconds: number;
  caughtUp: number;
  fresh: number;
  scanRowsPerS: number;
}

/** 2. Catch-up: pause, build a backlog, resume. */
async function measureCatchUp(run: Run, changes: number): Promise<CatchUp> {
  const { b, pipeline } = run;
  log(`catch-up: pausing the drain and writing ${int(changes)} changes ...`);
  await pauseDrain(run, 'benchmark: catch-up');
  // The drain's own speed: the landing consumer (which lands what the drain applied, once a
  // minute) waits until the catch-up is measured, then works it off before the OLTP runs.
  await run.landing.pause('benchmark: catch-up');
  const writeSeconds = await writeRestocks(b, run.actual, changes);
  await b.pool.query('analyze pipeline.outbox');
  const before = await backlog(b);
  log('  outbox scan limit over the backlog ...');
  const scan = await outboxScanRowsPerS(b.pool);
  log(`  backlog of ${int(before)} changes written in ${writeSeconds.toFixed(1)} s; resuming ...`);
  const tResume = performance.now();
  await pipeline.schedule.unpause('benchmark');
  await pipeline.schedule.trigger(ScheduleOverlapPolicy.SKIP);
  const caughtUp = await secondsUntilCaughtUp(b, tResume);
  const fresh = await secondsUntilFresh(pipeline.apiPort, tResume);
  return { before, writeSeconds, caughtUp, fresh, scanRowsPerS: scan.rowsPerS };
}

const CAPTURED_TABLES = ['skus', 'fulfillment_centers', 'region_fc', 'inventory', 'orders'];

async function setCaptureTriggers(b: Bench, on: boolean): Promise<void> {
  for (const t of CAPTURED_TABLES)
    await b.pool.query(`alter table shop.${t} ${on ? 'enable' : 'disable'} trigger capture_change`);
}

/**
 * The run without triggers changed rows the outbox never saw, so the store no longer equals
 * the rule (the sampled verify finds and repairs them, loudly). Emit them now: an update that
 * changes nothing still fires the capture trigger with the row as it is; the FC load counters
 * (sums over orders) are recomputed whole, as a backfill does (resumePipeline).
 */
async function reemitUntriggered(b: Bench, since: Date): Promise<void> {
  for (const t of ['skus', 'fulfillment_centers', 'inventory'])
    await b.pool.query(`update shop.${t} set updated_at = updated_at where updated_at >= $1`, [since]);
}

interface Oltp {
  rows: Row[];
  /** Percent of order-service throughput the capture triggers cost. */
  overhead: number;
}

/**
 * 3. OLTP overhead: the order service with and without the capture triggers.
 * The drain is stopped for both runs, so only the triggers differ.
 */
async function measureOltpOverhead(run: Run, seconds: number): Promise<Oltp> {
  const { b, landing } = run;
  const rows: Row[] = [];
  await landing.unpause('benchmark: catch-up measured');
  await waitForLanding(run.b, run.landing);
  await pauseDrain(run, 'benchmark: OLTP overhead');
  await landing.pause('benchmark: OLTP overhead');
  const tps: Record<string, number> = {};
  let untriggeredFrom = new Date();
  for (const mode of ['with capture triggers', 'without triggers'] as const) {
    const on = mode === 'with capture triggers';
    if (!on) untriggeredFrom = new Date((await b.pool.query('select now() as t')).rows[0].t);
    await setCaptureTriggers(b, on);
    log(`OLTP ${mode} for ${seconds} s ...`);
    const s = await runTraffic(b.pool, {
      rate: 0,
      durationMs: seconds * 1000,
      connections: 8,
      seed: 7,
      size: run.actual,
    });
    tps[mode] = s.operations / (s.elapsedMs / 1000);
    rows.push([mode, int(tps[mode]), int(s.changes / (s.elapsedMs / 1000))]);
  }
  await setCaptureTriggers(b, true);
  await reemitUntriggered(b, untriggeredFrom);
  return { rows, overhead: (1 - tps['with capture triggers'] / tps['without triggers']) * 100 };
}

/** The pipeline running as usual again: both schedules unpaused, all drained, the FC load counters recomputed. */
async function resumePipeline(run: Run): Promise<void> {
  await run.pipeline.schedule.unpause('benchmark done');
  await run.landing.unpause('benchmark done');
  await run.pipeline.schedule.trigger(ScheduleOverlapPolicy.SKIP);
  await waitForDrain(run.b, 500);
  await localActivities(createActivities(run.b)).backfillLoads();
}

interface Memory {
  /** Bytes per SKU·FC from sampled MEMORY USAGE of SKU hashes. */
  sampled: number;
  /** Bytes per SKU·FC from the whole of Redis's used_memory. */
  whole: number;
}

/** 4. Memory per SKU·FC. */
async function measureMemory(b: Bench, actual: CatalogueSize, random: () => number): Promise<Memory> {
  let bytes = 0;
  const sampleN = 2000;
  for (let i = 0; i < sampleN; i++)
    bytes += Number(
      await b.redis.call('MEMORY', 'USAGE', b.keys.sku(skuId(Math.floor(random() * actual.skus))), 'SAMPLES', '0'),
    );
  const used = Number(/used_memory:(\d+)/.exec(await b.redis.info('memory'))?.[1]);
  return { sampled: bytes / sampleN / actual.fcsPerSku, whole: used / (actual.skus * actual.fcsPerSku) };
}

/** 5. Reads: the library in this process (1 and 50 SKUs), one Redis round trip each. */
async function measureReads(
  b: Bench,
  actual: CatalogueSize,
  random: () => number,
  rtt: MachineLimits['rtt'],
): Promise<Row[]> {
  const reader = createBadgeReader({
    redis: b.redis,
    prefix: b.keys.prefix,
    partitions: b.keys.partitions.length,
    staleAfterMs: 10_000,
  });
  const reads: Row[] = [];
  for (const n of [1, 50]) {
    const samples: number[] = [];
    for (let i = 0; i < (n === 1 ? 20_000 : 5_000); i++) {
      const skus = Array.from(new Set(Array.from({ length: n }, () => skuId(Math.floor(random() * actual.skus)))));
      const t = performance.now();
      await reader.getBadges(regionId(Math.floor(random() * 10)), skus);
      samples.push(performance.now() - t);
    }
    const p = percentiles(samples);
    reads.push([`library`, n, ms(p.p50), ms(p.p99), ms(p.p999), `${(p.p99 / rtt.p99).toFixed(1)}x`]);
  }
  return reads;
}

interface Report {
  actual: CatalogueSize;
  limits: MachineLimits;
  freshness: FreshnessRun[];
  catchUp: CatchUp;
  oltp: Oltp;
  memory: Memory;
  reads: Row[];
  o: Options;
}

function printLimits({ actual, limits, catchUp }: Report): void {
  console.log(
    `\n## End to end (${int(actual.skus)} SKUs x ${actual.fcsPerSku} FCs; Temporal dev server, worker, API, PostgreSQL, Redis and load generator on this 2-core machine)\n`,
  );
  console.log("### 0. This machine's limits, measured in this run\n");
  console.log(
    table(
      ['limit', 'value'],
      [
        ...machineLimitRows(limits),
        ['outbox (txid, id) index range scan, every column, to this process', `${int(catchUp.scanRowsPerS)} rows/s`],
      ],
    ),
  );
}

function printFreshness({ freshness, limits: { bare }, o }: Report): void {
  const { rows, best } = freshnessRows(freshness, bare.p99);
  console.log(
    `\n### 1. Freshness: source commit -> visible through the read API (HTTP probes); each load runs ${o.warmupSeconds} s before its measured ${o.seconds} s, and the probes of those first seconds are counted apart\n`,
  );
  console.log(table(FRESHNESS_HEADERS, rows));
  console.log(`\nHighest sustained rate with p99 under 250 ms: ${int(best)} changes/s (of the rates run).`);
}

function printCatchUp({ catchUp: c, limits: { luaOps } }: Report): void {
  console.log('\n### 2. Catch-up\n');
  const drainRate = c.before / c.caughtUp;
  console.log(
    table(
      [
        'backlog',
        'written in',
        'caught up in',
        'drain changes/s',
        'of outbox scan limit',
        'of Redis Lua limit',
        'fresh again after',
      ],
      [
        [
          int(c.before),
          `${c.writeSeconds.toFixed(1)} s`,
          `${c.caughtUp.toFixed(1)} s`,
          int(drainRate),
          ratio(drainRate, c.scanRowsPerS),
          ratio(drainRate, luaOps),
          `${c.fresh.toFixed(1)} s`,
        ],
      ],
    ),
  );
}

function printOltpMemoryAndReads({ oltp, memory, reads }: Report): void {
  console.log('\n### 3. OLTP overhead of the capture triggers (order-service workload, 8 connections, max speed)\n');
  console.log(table(['mode', 'transactions/s', 'row changes/s'], oltp.rows));
  console.log(`\nOverhead: ${oltp.overhead.toFixed(1)}% of order-service throughput.`);
  console.log('\n### 4. Online store memory\n');
  console.log(
    table(
      ['measure', 'value'],
      [
        ['bytes per SKU·FC (SKU hashes)', int(memory.sampled)],
        ['bytes per SKU·FC (whole Redis)', int(memory.whole)],
      ],
    ),
  );
  console.log('\n### 5. Reads (library, one Redis round trip; HTTP: npm run bench:read)\n');
  console.log(table(['path', 'SKUs/call', 'p50 ms', 'p99 ms', 'p99.9 ms', 'p99 / Redis round trip p99'], reads));
}

function printReport(report: Report): void {
  printLimits(report);
  printFreshness(report);
  printCatchUp(report);
  printOltpMemoryAndReads(report);
}

async function main() {
  const o = parseOptions();
  const size: CatalogueSize = { skus: o.skus, fcs: 30, regions: 10, fcsPerRegion: 3, fcsPerSku: 3 };
  const config = benchConfig({
    DRAIN_BATCH_SIZE: '5000',
    DRAIN_ACTIVITY_BUDGET_MS: String(o.drainActivityBudgetMs),
  });
  const b = await openBench(config);
  let pipeline: BenchPipeline | undefined;
  try {
    const actual = await prepareCatalogue(b, size);
    const limits = await measureMachineLimits(b, log);
    // The real parts: Temporal, worker (with a bundle of the current workflow code), API.
    pipeline = await startBenchPipeline(config);
    const landing = pipeline.temporal.schedule.getHandle(names.landingScheduleId);
    const run: Run = { b, config, actual, pipeline, landing };
    await settlePipeline(b, landing, () =>
      b.pool.query('vacuum (analyze) shop.inventory, shop.orders, shop.skus').then(() => undefined),
    );
    await insertProbeSkus(b);
    const freshness = await measureFreshness(run, o);
    const catchUp = await measureCatchUp(run, o.backlog);
    const oltp = await measureOltpOverhead(run, o.oltpSeconds);
    await resumePipeline(run);
    const random = rng(5); // one sequence: the memory sample's SKUs, then the reads'
    const memory = await measureMemory(b, actual, random);
    const reads = await measureReads(b, actual, random, limits.rtt);
    await pipeline.temporal.connection.close();
    await deleteProbeSkus(b); // keep the catalogue as it was
    printReport({ actual, limits, freshness, catchUp, oltp, memory, reads, o });
  } finally {
    await pipeline?.stop();
    await b.close();
  }
}

main().catch((err) => {
  console.error(`bench: ${err.stack}`);
  process.exit(1);
});
