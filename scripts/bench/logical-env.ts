/**
 * The benchmark's own databases under capture from the WAL (`npm run bench:e2e-logical`), as
 * test/support/split-sources.ts lays them out: an inventory source (skus, fulfillment_centers,
 * region_fc, inventory) and an orders source, each set up by sql/source-setup.sql and read by
 * capture as its reader role, beside a pipeline database of their own:
 *   fresh_badges_bench_inventory, fresh_badges_bench_orders, fresh_badges_bench_logical;
 * Redis db 14 under the prefix fbl: (the trigger benchmarks' fbb: keys are left alone).
 *
 * The catalogue is loaded once: seeded into the inventory source with the slots in place, captured
 * into the outbox in this process, drained into Redis. A run that ends cleanly has drained every
 * change it made and drops its slots (a slot left behind keeps the source's WAL), then marks the
 * store in step with its sources (`SYNCED`); the next run forgets the old capture progress and
 * creates the slots again before it writes. Without the mark (a run killed midway) the next run
 * loads everything afresh.
 */
import pg from 'pg';
import { runCapture } from '../../capture/capture-loop';
import { ensureSlot } from '../../capture/slot';
import { captureSources, type CaptureSource } from '../../capture/sources';
import type { Config } from '../../config';
import { createPool } from '../../db/pool';
import { truncateEverything } from '../../db/truncate';
import { CatalogueSize, readCatalogueSize, seedCatalogue } from '../../simulator/catalogue';
import { masterNodes } from '../../store/redis-client';
import { setEpoch } from '../../store/watermark';
import { createSourceDatabase, dropSlots, readerUrl, withClient, withDatabase } from '../lib/source-databases';
import { Bench, BENCH_DATABASE_URL, benchConfig, drainAll, openBench } from './bench-env';
import { int } from './stats';

export const LOGICAL_PIPELINE_URL = withDatabase(BENCH_DATABASE_URL, 'fresh_badges_bench_logical');
export const LOGICAL_INVENTORY_URL = withDatabase(BENCH_DATABASE_URL, 'fresh_badges_bench_inventory');
export const LOGICAL_ORDERS_URL = withDatabase(BENCH_DATABASE_URL, 'fresh_badges_bench_orders');

/** The pipeline's configuration: capture from the WAL of the two bench sources, read as the reader role. */
export function logicalBenchConfig(over: Record<string, string> = {}): Config {
  return benchConfig({
    DATABASE_URL: LOGICAL_PIPELINE_URL,
    REDIS_PREFIX: 'fbl:',
    CAPTURE_MODE: 'logical',
    INVENTORY_DATABASE_URL: readerUrl(LOGICAL_INVENTORY_URL),
    ORDERS_DATABASE_URL: readerUrl(LOGICAL_ORDERS_URL),
    ...over,
  });
}

/** The pipeline's bench (its pool is the pipeline database) and the two sources, as their owners write them. */
export interface LogicalBench extends Bench {
  inventory: pg.Pool;
  orders: pg.Pool;
  sources: CaptureSource[];
  /** Each source's URL as its owner (the services' writes, the benchmark's own SQL). */
  ownerUrl: Record<string, string>;
}

const OWNER_URL: Record<string, string> = { inventory: LOGICAL_INVENTORY_URL, orders: LOGICAL_ORDERS_URL };

async function sourceHasSchema(url: string): Promise<boolean> {
  try {
    return await withClient(url, async (c) => {
      const r = await c.query(`select count(*)::int as n from pg_publication where pubname = 'fresh_badges'`);
      return r.rows[0].n === 1;
    });
  } catch {
    return false; // no such database yet
  }
}

export async function openLogicalBench(config: Config): Promise<LogicalBench> {
  const b = await openBench(config);
  if (!(await sourceHasSchema(LOGICAL_INVENTORY_URL)))
    await createSourceDatabase({ url: LOGICAL_INVENTORY_URL, tables: 'inventory', forCapture: true });
  if (!(await sourceHasSchema(LOGICAL_ORDERS_URL)))
    await createSourceDatabase({ url: LOGICAL_ORDERS_URL, tables: 'orders', forCapture: true });
  const inventory = createPool(LOGICAL_INVENTORY_URL, 24);
  const orders = createPool(LOGICAL_ORDERS_URL, 24);
  return {
    ...b,
    inventory,
    orders,
    sources: captureSources(config),
    ownerUrl: OWNER_URL,
    close: async () => {
      await Promise.all([inventory.end(), orders.end()]);
      await b.close();
    },
  };
}

const SYNCED = 'bench:synced';

/** Drops the bench's slots, ending a walsender that still holds one; retries until none is left (about 10 s at most). */
export async function dropBenchSlots(lb: Pick<LogicalBench, 'sources'>): Promise<string[]> {
  const admin = withDatabase(BENCH_DATABASE_URL, 'postgres');
  const slots = lb.sources.map((s) => s.slot);
  for (let i = 0; i < 5; i++) {
    await dropSlots(admin, slots);
    const left = await withClient(admin, async (c) =>
      (await c.query(`select slot_name from pg_replication_slots where slot_name = any($1)`, [slots])).rows.map(
        (r) => r.slot_name as string,
      ),
    );
    if (!left.length) return [];
    await new Promise((done) => setTimeout(done, 1_000));
  }
  return slots;
}

/** Creates each source's slot (as the reader role, as capture would): every write after this is in it. */
async function createSlots(lb: LogicalBench): Promise<void> {
  for (const s of lb.sources) await withClient(s.url, (c) => ensureSlot(c, s.slot));
}

/** Marks the store in step with its sources: every change is drained and the slots are gone. */
export async function markSynced(lb: LogicalBench): Promise<void> {
  await lb.redis.set(`${lb.keys.prefix}${SYNCED}`, new Date().toISOString());
}

/** Deletes every key of the bench's prefix on every master (UNLINK in batches). */
async function clearStore(lb: LogicalBench): Promise<void> {
  for (const node of masterNodes(lb.redis)) {
    const stream = node.scanStream({ match: `${lb.keys.prefix}*`, count: 5000 });
    for await (const keys of stream as AsyncIterable<string[]>) if (keys.length) await node.unlink(...keys);
  }
}

/**
 * Makes sure the sources hold a catalogue of this size, loaded into Redis through capture, and
 * that each source's slot exists and no earlier capture progress is in the way. Returns whether
 * it loaded the catalogue now.
 */
export async function ensureLogicalCatalogue(
  lb: LogicalBench,
  size: CatalogueSize,
  log: (s: string) => void,
): Promise<boolean> {
  const have = await readCatalogueSize(lb.inventory);
  const synced = await lb.redis.get(`${lb.keys.prefix}${SYNCED}`);
  const storeHasIt = (await lb.redis.exists(lb.keys.partitions[0].meta)) === 1;
  // From now until this run's clean end, the store may fall behind its sources.
  await lb.redis.del(`${lb.keys.prefix}${SYNCED}`);
  await dropBenchSlots(lb); // a run killed before its end may have left them
  // The last run's capture ended with its slots dropped, after everything it wrote was drained.
  await lb.pool.query(`delete from pipeline.capture_progress`);
  if (have.skus === size.skus && have.fcs === size.fcs && storeHasIt && synced) {
    await createSlots(lb);
    return false;
  }
  await loadCatalogue(lb, size, log);
  return true;
}

/** Empties everything, then seeds the inventory source with the slots in place and captures and drains it all. */
async function loadCatalogue(lb: LogicalBench, size: CatalogueSize, log: (s: string) => void): Promise<void> {
  log(`loading ${int(size.skus)} SKUs x ${size.fcsPerSku} FCs (seed the inventory source, capture, drain) ...`);
  await createSourceDatabase({ url: LOGICAL_INVENTORY_URL, tables: 'inventory', forCapture: true });
  await createSourceDatabase({ url: LOGICAL_ORDERS_URL, tables: 'orders', forCapture: true });
  await truncateEverything(lb.pool);
  await clearStore(lb);
  await createSlots(lb);
  const t0 = performance.now();
  await seedCatalogue(lb.inventory, size, (done, total) => process.stderr.write(`\r  seeded ${done}/${total} SKUs`));
  process.stderr.write('\n');
  await lb.inventory.query('analyze');
  log(`  seeded in ${((performance.now() - t0) / 1000).toFixed(1)} s; capturing ...`);
  const since = Date.now();
  const t1 = performance.now();
  const captured = await Promise.all(lb.sources.map((source) => captureUntilCovered(lb, source, since)));
  const rows = captured.reduce((a, b) => a + b, 0);
  log(`  captured ${int(rows)} rows in ${((performance.now() - t1) / 1000).toFixed(1)} s; draining ...`);
  await lb.pool.query('analyze pipeline.outbox');
  const drain = await drainAll(lb, (n, s) => process.stderr.write(`\r  drained ${int(n)} rows in ${s.toFixed(0)} s`));
  process.stderr.write('\n');
  log(`  drained ${int(drain.rows)} rows in ${drain.seconds.toFixed(1)} s`);
  await setEpoch(lb.redis, lb.keys, 'bench'); // loaded through the pipeline: complete
}

/** Captures the source in this process until a tick written after `since` is in the outbox; returns the rows. */
async function captureUntilCovered(lb: LogicalBench, source: CaptureSource, since: number): Promise<number> {
  const abort = new AbortController();
  const p = await runCapture({
    source,
    pipeline: lb.pool,
    tickMs: 100,
    maxBatchRows: 20_000,
    signal: abort.signal,
    onProgress: (p) => {
      if (p.coveredAtMs !== null && p.coveredAtMs > since) abort.abort();
    },
  });
  return p.rows;
}
