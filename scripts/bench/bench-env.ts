/**
 * The benchmark's own database, Redis db and catalogue, so benchmarks never touch the running
 * pipeline's data: fresh_badges_bench, Redis db 14, prefix fbb:. Loading goes through the real
 * path (capture triggers -> outbox -> drain batches -> Redis), which doubles as a catch-up run.
 */
import path from 'node:path';
import { createStoreRedis, masterNodes } from '../../store/redis-client';
import pg from 'pg';
import { Config, loadConfig } from '../../config';
import { ensureDatabase, migrate } from '../../db/migrate';
import { createPool } from '../../db/pool';
import { truncateEverything } from '../../db/truncate';
import { createActivities } from '../../activities';
import { drainShards, readDrainLayout } from '../../outbox';
import { localActivities } from '../lib/local-activities';
import { CatalogueSize, readCatalogueSize, seedCatalogue } from '../../simulator/catalogue';
import { storeKeysFor } from '../../store/keys';
import { DATA_DIR } from '../lib/temporal-server';

export const BENCH_DATABASE_URL =
  process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/fresh_badges_bench';
export const BENCH_REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/14';

export function benchConfig(over: Record<string, string> = {}): Config {
  return loadConfig({
    DATABASE_URL: BENCH_DATABASE_URL,
    REDIS_URL: BENCH_REDIS_URL,
    REDIS_PREFIX: 'fbb:',
    DRAIN_BATCH_SIZE: '20000',
    APPLY_CHUNK: '500',
    EXPORT_DIR: path.join(DATA_DIR, 'bench', 'export'),
    ...over,
  });
}

export async function openBench(config = benchConfig()) {
  await ensureDatabase(config.DATABASE_URL);
  const client = new pg.Client({ connectionString: config.DATABASE_URL });
  await client.connect();
  await migrate(client);
  await client.end();
  const pool = createPool(config.DATABASE_URL, 40);
  const redis = createStoreRedis(config);
  return {
    config,
    pool,
    redis,
    keys: storeKeysFor(config),
    close: async () => (redis.disconnect(), await pool.end()),
  };
}

export type Bench = Awaited<ReturnType<typeof openBench>>;

export async function resetBench(b: Bench): Promise<void> {
  await truncateEverything(b.pool);
  await Promise.all(masterNodes(b.redis).map((node) => node.flushdb()));
}

/** Drains the whole outbox with back-to-back batches; returns rows and seconds. */
export async function drainAll(
  b: Bench,
  onProgress?: (rows: number, s: number) => void,
): Promise<{ rows: number; seconds: number }> {
  const acts = localActivities(createActivities(b));
  const owner = 'benchmark';
  // every drain shard of the layout in force, each its own loop, side by side as their workflows run
  const shards = drainShards((await readDrainLayout(b.pool)).shards).map((s) => ({ index: s.index, count: s.count }));
  for (const shard of shards) await acts.acquireDrainLease({ owner, shard });
  const t0 = performance.now();
  let rows = 0;
  let last = t0;
  await Promise.all(
    shards.map(async (shard) => {
      for (;;) {
        const r = await acts.drainBatch({ owner, shard });
        rows += r.rows;
        if (onProgress && performance.now() - last > 2000) {
          last = performance.now();
          onProgress(rows, (last - t0) / 1000);
        }
        if (r.outcome !== 'applied') break;
      }
    }),
  );
  for (const shard of shards) await acts.releaseDrainLease({ owner, shard });
  return { rows, seconds: (performance.now() - t0) / 1000 };
}

/** Makes sure the bench database holds a catalogue of this size, loaded into Redis. */
export async function ensureCatalogue(
  b: Bench,
  size: CatalogueSize,
  log: (s: string) => void,
): Promise<{ loaded: boolean; drain?: { rows: number; seconds: number } }> {
  const have = await readCatalogueSize(b.pool);
  const storeHasIt = (await b.redis.exists(b.keys.partitions[0].meta)) === 1;
  if (have.skus === size.skus && have.fcs === size.fcs && storeHasIt) return { loaded: false };
  log(
    `loading ${size.skus.toLocaleString('en-US')} SKUs x ${size.fcsPerSku} FCs (seed through the capture triggers, then drain) ...`,
  );
  await resetBench(b);
  const t0 = performance.now();
  await seedCatalogue(b.pool, size, (done, total) => process.stderr.write(`\r  seeded ${done}/${total} SKUs`));
  process.stderr.write('\n');
  log(`  seeded in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  // No autovacuum here: without statistics the planner reads a 4M-row outbox with sequential
  // scans and the load drains at a few thousand rows/s instead of tens of thousands.
  await b.pool.query('analyze');
  const drain = await drainAll(b, (rows, s) =>
    process.stderr.write(`\r  drained ${rows.toLocaleString('en-US')} rows in ${s.toFixed(0)} s`),
  );
  process.stderr.write('\n');
  log(
    `  drained ${drain.rows.toLocaleString('en-US')} outbox rows in ${drain.seconds.toFixed(1)} s (${Math.round(drain.rows / drain.seconds).toLocaleString('en-US')} rows/s)`,
  );
  return { loaded: true, drain };
}
