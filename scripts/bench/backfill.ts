/**
 * `npm run bench:backfill`: how fast an emptied store is rebuilt from the source at full speed
 * (what self-healing after Redis comes back empty costs): the backfill's activities in a loop, no
 * rate limit, on the benchmark catalogue (fresh_badges_bench, Redis db 14; loaded if missing).
 */
import { Command } from 'commander';
import { createActivities } from '../../activities';
import { localActivities } from '../lib/local-activities';
import { BACKFILL_TABLES } from '../../activities/backfill/backfill';
import { CatalogueSize } from '../../simulator/catalogue';
import { positiveInt } from '../lib/cli-args';
import { benchConfig, ensureCatalogue, openBench } from './bench-env';
import { int } from './stats';

async function main(): Promise<void> {
  const o = new Command()
    .name('npm run bench:backfill --')
    .option('--skus <n>', 'catalogue size', positiveInt('--skus'), 100_000)
    .option('--chunk <rows>', 'rows per chunk', positiveInt('--chunk'), 5_000)
    .parse()
    .opts<{ skus: number; chunk: number }>();
  const size: CatalogueSize = { skus: o.skus, fcs: 12, regions: 6, fcsPerRegion: 3, fcsPerSku: 3 };
  const b = await openBench(benchConfig());
  try {
    await ensureCatalogue(b, size, console.log);
    await b.pool.query('analyze');
    const acts = localActivities(createActivities(b));
    await b.redis.flushdb(); // Redis "restarted empty"
    const t0 = performance.now();
    let rows = 0;
    for (const table of BACKFILL_TABLES) {
      let after: string[] | null = null;
      do {
        const r = await acts.backfillChunk({ table, after, limit: o.chunk });
        rows += r.rows;
        after = r.last;
      } while (after);
    }
    const loads = await acts.backfillLoads();
    await acts.finishBackfill({ epoch: `bench-${Date.now()}` });
    const s = (performance.now() - t0) / 1000;
    console.log(
      `backfill of an empty store: ${int(rows)} source rows and ${int(loads.counters)} load counters in ${s.toFixed(1)} s = ${int(rows / s)} rows/s (${int(o.skus)} SKUs, chunks of ${int(o.chunk)})`,
    );
  } finally {
    await b.close();
  }
}

main().catch((err) => {
  console.error(`bench:backfill: ${err.message}`);
  process.exit(1);
});
