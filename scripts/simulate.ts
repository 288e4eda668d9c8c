/**
 * `npm run simulate -- [options]`: seeds a catalogue and/or generates order-service traffic.
 *   npm run simulate -- --seed --skus 100000            create the catalogue
 *   npm run simulate -- --rate 2000 --duration 60       2,000 changes/s for a minute
 */
import { Command, InvalidArgumentError } from 'commander';
import { loadConfig } from '../config';
import { checkPostgres, createPool } from '../db/pool';
import { catalogueExists, CatalogueSize, DEFAULT_SIZE, readCatalogueSize, seedCatalogue } from '../simulator/catalogue';
import { runTraffic } from '../simulator/traffic';
import { reportThrottle } from '../simulator/report-throttle';
import { logger } from '../log/logger';

/** Its reports are log lines (JSON off a terminal), at most every 10 s: `npm start --simulate` shares the output with the worker. */
const log = logger('simulator');

function intArg(min: number, max: number) {
  return (v: string) => {
    // decimal digits only: Number() reads ' ' as 0 (for --rate: as fast as possible) and 1e3 as 1000
    const n = /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}`);
    return n;
  };
}

export async function runSimulatorCli(argv: string[]): Promise<void> {
  const program = new Command()
    .name('npm run simulate --')
    .description('seed a demo catalogue and generate order-service traffic against the shop schema')
    .option('--seed', 'create the catalogue (idempotent)')
    .option('--seed-if-empty', 'create the catalogue only when shop.skus is empty')
    .option('--skus <n>', 'SKUs in the catalogue', intArg(1, 9_999_999), DEFAULT_SIZE.skus)
    .option('--fcs <n>', 'fulfillment centers', intArg(1, 999), DEFAULT_SIZE.fcs)
    .option('--regions <n>', 'regions', intArg(1, 99), DEFAULT_SIZE.regions)
    .option('--fcs-per-region <n>', 'FCs serving each region', intArg(1, 999), DEFAULT_SIZE.fcsPerRegion)
    .option('--fcs-per-sku <n>', 'FCs stocking each SKU', intArg(1, 999), DEFAULT_SIZE.fcsPerSku)
    .option('--rate <n>', 'target changes per second (0 = as fast as possible)', intArg(0, 1_000_000), 0)
    .option('--changes <n>', 'stop after this many changes', intArg(1, 1_000_000_000))
    .option('--duration <s>', 'stop after this many seconds', intArg(1, 86_400))
    .option('--connections <n>', 'concurrent connections', intArg(1, 64), 8)
    .option('--random-seed <n>', 'seed of the random workload', intArg(0, 2 ** 31), 1)
    .option('--report-every <s>', 'seconds between progress reports', intArg(1, 3_600), 10)
    .exitOverride()
    .parse(argv, { from: 'user' });
  const o = program.opts();
  const config = loadConfig();
  const pool = createPool(config.DATABASE_URL, o.connections + 1);
  try {
    await checkPostgres(pool);
    const size: CatalogueSize = {
      skus: o.skus,
      fcs: o.fcs,
      regions: o.regions,
      fcsPerRegion: o.fcsPerRegion,
      fcsPerSku: o.fcsPerSku,
    };
    if (o.seed || (o.seedIfEmpty && !(await catalogueExists(pool)))) {
      const t0 = Date.now();
      const due = reportThrottle(o.reportEvery * 1000);
      await seedCatalogue(pool, size, (done, total) => due() && log.info(`seeding catalogue: ${done}/${total} SKUs`));
      log.info(`seeded ${size.skus} SKUs x ${size.fcsPerSku} FCs in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
    if (o.changes === undefined && o.duration === undefined && (o.seed || o.seedIfEmpty) && !o.rate) return;
    const actual = await readCatalogueSize(pool);
    const abort = new AbortController();
    process.once('SIGINT', () => abort.abort());
    const stats = await runTraffic(pool, {
      rate: o.rate,
      changes: o.changes,
      durationMs: o.duration !== undefined ? o.duration * 1000 : undefined,
      connections: o.connections,
      seed: o.randomSeed,
      size: actual,
      signal: abort.signal,
      progressEveryMs: o.reportEvery * 1000,
      onProgress: (s) =>
        log.info(
          { changes: s.changes, elapsedMs: s.elapsedMs, failed: s.failed },
          `${s.changes} changes in ${(s.elapsedMs / 1000).toFixed(0)} s (${Math.round((s.changes * 1000) / s.elapsedMs)}/s)`,
        ),
    });
    log.info(
      { changes: stats.changes, operations: stats.operations, byKind: stats.byKind, failed: stats.failed },
      `done, ${stats.changes} changes, ${stats.operations} operations (${JSON.stringify(stats.byKind)}), ${stats.failed} failed, ${Math.round((stats.changes * 1000) / stats.elapsedMs)} changes/s`,
    );
  } finally {
    await pool.end();
  }
}

if (require.main === module) {
  runSimulatorCli(process.argv.slice(2)).catch((err) => {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') process.exit(0);
    log.error(err.message);
    process.exit(err.exitCode === undefined || err.exitCode === 0 ? 1 : 2);
  });
}
