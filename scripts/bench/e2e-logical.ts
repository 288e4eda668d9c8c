/**
 * `npm run bench:e2e-logical`: end to end through the replication slots (CAPTURE_MODE=logical), on
 * this machine, everything co-located, in one run (docs/benchmarks.md):
 *   0. the machine's own limits, measured in the same run: those of `npm run bench`, the outbox
 *      COPY ceiling (capture's write) and the server's decoding of each slot's backlog; every
 *      figure below is printed beside the limit that bounds it, as a ratio
 *   1. freshness: a source commit -> visible through the read API, and -> the API's asOf past it,
 *      at sustained rates from the split-aware simulator (default 2,000 changes/s) and from
 *      pgbench per source (inventory reservations against the inventory database, order inserts
 *      against the orders database, half the rate each; default 2,000 to 15,000 changes/s), with
 *      a write transaction held open on EACH source for the whole section; the CPU it took
 *   2. catch-up: a backlog (default 1,000,000 changes, half inventory updates, half order inserts,
 *      in source transactions of 100) written while capture is paused (its schedules paused, its
 *      runs stopped), then resumed: capture into the outbox and end to end into Redis, changes/s,
 *      and the CPU per change of each part
 * The real parts run as in production: a Temporal dev server, the worker process (capture
 * workflows and the drain, started by their schedules), the batch worker, the read API process;
 * the load and the probes run here. Uses its own databases (two sources and a pipeline database,
 * scripts/bench/logical-env.ts), Redis db 14 (prefix fbl:) and its own Temporal server, and drops
 * its replication slots at the end, on an error and on Ctrl-C.
 */
import path from 'node:path';
import { ScheduleHandle } from '@temporalio/client';
import { Command } from 'commander';
import { Config, names } from '../../config';
import { CatalogueSize, readCatalogueSize } from '../../simulator/catalogue';
import { captureScheduleIds } from '../lib/schedules';
import { nonNegativeInt, positiveInt } from '../lib/cli-args';
import { withDatabase } from '../lib/source-databases';
import { DATA_DIR } from '../lib/temporal-server';
import { BENCH_DATABASE_URL } from './bench-env';
import { recordPipelinePids, startSlotGuard } from './slot-guard';
import { settlePipeline, secondsUntilCaughtUp } from './drain-progress';
import { measureFreshness } from './e2e-logical-freshness';
import { measureCatchUp } from './e2e-logical-catch-up';
import { printReport } from './e2e-logical-report';
import { deleteProbeSkus, insertProbeSkus } from './freshness-probes';
import {
  dropBenchSlots,
  ensureLogicalCatalogue,
  LogicalBench,
  logicalBenchConfig,
  markSynced,
  openLogicalBench,
} from './logical-env';
import { measureMachineLimits, outboxCopyRowsPerS } from './machine-limits';
import { BenchPipeline, startBenchPipeline } from './processes';
import type { LogicalLimits, LogicalRun, Options } from './e2e-logical-types';

const log = (s: string) => process.stderr.write(`${s}\n`);
const ADMIN_URL = withDatabase(BENCH_DATABASE_URL, 'postgres');
const PIDS_FILE = path.join(DATA_DIR, 'bench', 'e2e-logical.pids');

function parseOptions(): Options {
  const list = (v: string) => v.split(',').filter(Boolean).map(Number);
  return new Command()
    .name('npm run bench:e2e-logical --')
    .option('--skus <n>', 'catalogue size (3 FCs each)', positiveInt('--skus'), 1_000_000)
    .option('--idle-seconds <s>', 'seconds of probes with no load first (0: none)', (v) => Number(v), 10)
    .option('--rates <list>', 'split simulator change rates to probe (changes/s; empty: none)', list, [2000])
    .option(
      '--pgbench-rates <list>',
      'pgbench change rates to probe, both sources together',
      list,
      [2000, 5000, 10000, 15000],
    )
    .option('--seconds <s>', 'seconds per rate', positiveInt('--seconds'), 30)
    .option(
      '--warmup-seconds <s>',
      'seconds each load runs before the measured seconds (their probes are reported apart)',
      nonNegativeInt('--warmup-seconds'),
      5,
    )
    .option('--backlog <n>', 'changes in the catch-up backlog (both sources)', positiveInt('--backlog'), 1_000_000)
    .option(
      '--backlog-tx-rows <n>',
      'changes per source transaction in the backlog',
      positiveInt('--backlog-tx-rows'),
      100,
    )
    .option('--tick-ms <n>', 'CAPTURE_TICK_MS of the pipeline', positiveInt('--tick-ms'), 100)
    .option(
      '--drain-activity-budget-ms <n>',
      'DRAIN_ACTIVITY_BUDGET_MS of the pipeline (0: one drain batch per activity, as before ADR 0012)',
      nonNegativeInt('--drain-activity-budget-ms'),
      5000,
    )
    .parse()
    .opts<Options>();
}

/** 0. The machine's limits that need no backlog (decoding and the outbox scan are measured over the catch-up's). */
async function measureLimits(lb: LogicalBench): Promise<LogicalLimits> {
  const machine = await measureMachineLimits(lb, log);
  log('machine limits: outbox COPY ...');
  const copyRowsPerS = await outboxCopyRowsPerS(lb.pool);
  return { ...machine, copyRowsPerS };
}

/** The freshly started pipeline in its steady state: both captures streaming, all drained and landed, pruned. */
async function settle(run: LogicalRun): Promise<void> {
  const { lb } = run;
  await secondsUntilCaughtUp(lb, performance.now(), 300);
  await settlePipeline(lb, run.landing, async () => {
    await lb.inventory.query('vacuum (analyze) shop.inventory, shop.skus');
    await lb.orders.query('vacuum (analyze) shop.orders');
    await lb.pool.query('vacuum (analyze) pipeline.outbox');
  });
}

/**
 * What the end needs, once: the pipeline stopped (its captures write what they read), the slots
 * dropped, and, after a clean run whose every change was drained, the store marked in step.
 */
function cleanupOnce(lb: LogicalBench, pipeline: () => BenchPipeline | undefined) {
  let done: Promise<void> | null = null;
  return (clean: boolean): Promise<void> =>
    (done ??= (async () => {
      await pipeline()
        ?.stop()
        .catch((err) => log(`bench: stopping the pipeline: ${err.message}`));
      const left = await dropBenchSlots(lb);
      if (left.length) log(`bench: WARNING: replication slots left behind (drop them!): ${left.join(', ')}`);
      else if (clean) await markSynced(lb);
      await lb.close().catch(() => undefined);
    })());
}

async function runPhases(lb: LogicalBench, config: Config, o: Options, started: (p: BenchPipeline) => void) {
  const size: CatalogueSize = { skus: o.skus, fcs: 30, regions: 10, fcsPerRegion: 3, fcsPerSku: 3 };
  await ensureLogicalCatalogue(lb, size, log);
  const actual = await readCatalogueSize(lb.inventory);
  const limits = await measureLimits(lb);
  const pipeline = await startBenchPipeline(config);
  started(pipeline);
  const landing: ScheduleHandle = pipeline.temporal.schedule.getHandle(names.landingScheduleId);
  const captures = captureScheduleIds(config).map((id) => pipeline.temporal.schedule.getHandle(id));
  const run: LogicalRun = { lb, config, actual, pipeline, landing, captures };
  await settle(run);
  await insertProbeSkus({ pool: lb.inventory });
  const freshness = await measureFreshness(run, o);
  const catchUp = await measureCatchUp(run, o);
  await deleteProbeSkus({ pool: lb.inventory }); // the catalogue as it was
  await secondsUntilCaughtUp(lb, performance.now(), 300); // every change of this run in Redis
  await pipeline.temporal.connection.close();
  return { actual, limits, freshness, catchUp, o, tickMs: config.CAPTURE_TICK_MS };
}

async function main(): Promise<void> {
  const o = parseOptions();
  const config = logicalBenchConfig({
    DRAIN_BATCH_SIZE: '5000',
    CAPTURE_TICK_MS: String(o.tickMs),
    DRAIN_ACTIVITY_BUDGET_MS: String(o.drainActivityBudgetMs),
  });
  const lb = await openLogicalBench(config);
  // if this process is killed outright, the guard stops the pipeline and drops the slots
  startSlotGuard(
    ADMIN_URL,
    PIDS_FILE,
    lb.sources.map((s) => s.slot),
  );
  let pipeline: BenchPipeline | undefined;
  const cleanup = cleanupOnce(lb, () => pipeline);
  // (`on`, not `once`: a second Ctrl-C while cleaning up must not end the process halfway)
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.on(signal, () => {
      log(`bench: ${signal}: stopping the pipeline and dropping the replication slots ...`);
      void cleanup(false).finally(() => process.exit(130));
    });
  // whatever else fails, the slots go too
  process.on('unhandledRejection', (err) => {
    log(`bench: ${(err as Error)?.stack ?? err}`);
    void cleanup(false).finally(() => process.exit(1));
  });
  let report: Awaited<ReturnType<typeof runPhases>> | undefined;
  try {
    report = await runPhases(lb, config, o, (p) => {
      pipeline = p;
      recordPipelinePids(PIDS_FILE, Object.values(p.pids));
    });
  } finally {
    await cleanup(report !== undefined);
  }
  printReport(report);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`bench: ${err.stack}`);
    process.exit(1);
  },
);
