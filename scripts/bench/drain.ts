/**
 * `npm run bench:drain`: the drain's activities alone (no Temporal, no worker process), working off
 * a backlog of inventory restocks on the benchmark catalogue: the ceiling the end-to-end catch-up
 * (`npm run bench`, section 2) is compared with. Options set the batch size and Lua chunk, the two
 * knobs that move it.
 */
import { Command } from 'commander';
import { positiveInt } from '../lib/cli-args';
import { benchConfig, drainAll, ensureCatalogue, openBench } from './bench-env';
import { int } from './stats';

async function main(): Promise<void> {
  const o = new Command()
    .name('npm run bench:drain --')
    .option('--backlog <changes>', 'inventory changes to drain', positiveInt('--backlog'), 1_000_000)
    .option('--skus <n>', 'catalogue size (loaded if missing)', positiveInt('--skus'), 1_000_000)
    .option('--batch <rows>', 'rows per drain batch (DRAIN_BATCH_SIZE)', positiveInt('--batch'), 50_000)
    .option('--apply-chunk <ops>', 'store operations per Lua call (APPLY_CHUNK)', positiveInt('--apply-chunk'), 250)
    .parse()
    .opts<{ backlog: number; skus: number; batch: number; applyChunk: number }>();
  const b = await openBench(benchConfig({ DRAIN_BATCH_SIZE: String(o.batch), APPLY_CHUNK: String(o.applyChunk) }));
  try {
    await ensureCatalogue(b, { skus: o.skus, fcs: 12, regions: 6, fcsPerRegion: 3, fcsPerSku: 3 }, console.log);
    await drainAll(b); // whatever an earlier run left
    const t0 = performance.now();
    const skus = Math.ceil(o.backlog / 3);
    for (let from = 0; from < skus; from += 1000) {
      await b.pool.query(
        `update shop.inventory set on_hand = on_hand + 1, updated_at = now()
          where sku_id >= 'SKU-' || lpad($1::text, 7, '0') and sku_id < 'SKU-' || lpad($2::text, 7, '0')`,
        [from % o.skus, Math.min(from + 1000, o.skus)],
      );
    }
    console.log(`backlog written in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const r = await drainAll(b);
    console.log(
      `drained ${int(r.rows)} changes in ${r.seconds.toFixed(2)} s = ${int(r.rows / r.seconds)} changes/s (batch ${int(o.batch)}, ${o.applyChunk} ops per Lua call)`,
    );
  } finally {
    await b.close();
  }
}

main().catch((err) => {
  console.error(`bench:drain: ${err.message}`);
  process.exit(1);
});
