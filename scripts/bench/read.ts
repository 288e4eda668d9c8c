/**
 * `npm run bench:read`: badge read latency and throughput with N SKUs x 3 FCs loaded (default
 * 1,000,000), side by side with the design this product replaces (the badge by a SQL query on
 * PostgreSQL per request), and the online store's memory per SKU·FC.
 *
 *   library (in-process, one Lua round trip): 1 and 50 SKUs per call
 *   HTTP (the API in its own process, keep-alive clients in this one): 1 and 50 SKUs, concurrency 1 and 64
 *   SQL per request on the OLTP: 1 SKU, concurrency 1 and 16, with the load it puts on PostgreSQL
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { Command } from 'commander';
import { BADGES_SQL } from '../../reconcile/source-badges';
import { createBadgeReader } from '../../serving/badge-reader';
import { CatalogueSize, regionId, skuId } from '../../simulator/catalogue';
import { rng } from '../../simulator/traffic';
import { openBench, ensureCatalogue, Bench } from './bench-env';
import { postgresCpuSeconds } from './cpu';
import { httpLoad } from './http-load';
import { int, ms, percentiles, table } from './stats';

const ROOT = path.resolve(__dirname, '..', '..');

interface Options {
  skus: number;
  seconds: number;
  calls: number;
}

type Row = (string | number)[];

const log = (s: string) => console.log(s);

function parseOptions(): Options {
  return new Command()
    .option('--skus <n>', 'SKUs in the catalogue', (v) => Number(v), 1_000_000)
    .option('--seconds <s>', 'seconds per HTTP/SQL run', (v) => Number(v), 10)
    .option('--calls <n>', 'library calls per case', (v) => Number(v), 20_000)
    .parse()
    .opts<Options>();
}

/** Random SKUs (distinct) and regions of the catalogue: one sequence (seed 42) that every measure draws from in turn. */
interface Picks {
  skus(n: number): string[];
  region(): string;
}

function picks(size: CatalogueSize): Picks {
  const random = rng(42);
  return {
    skus: (n) => {
      const set = new Set<string>();
      while (set.size < n) set.add(skuId(Math.floor(random() * size.skus)));
      return [...set];
    },
    region: () => regionId(Math.floor(random() * size.regions)),
  };
}

interface Memory {
  perSkuFc: number;
  used: number;
  keys: number;
  encoding: unknown;
}

/** Memory: sampled MEMORY USAGE of SKU keys (the per-SKU·FC cost) and INFO's total. */
async function measureMemory(b: Bench, size: CatalogueSize, pick: Picks): Promise<Memory> {
  const sample = pick.skus(2000);
  let bytes = 0;
  for (const sku of sample) bytes += Number(await b.redis.call('MEMORY', 'USAGE', b.keys.sku(sku), 'SAMPLES', '0'));
  const perSkuFc = bytes / sample.length / size.fcsPerSku;
  const info = await b.redis.info('memory');
  const used = Number(/used_memory:(\d+)/.exec(info)?.[1]);
  const keys = await b.redis.dbsize();
  const encoding = await b.redis.call('OBJECT', 'ENCODING', b.keys.sku(sample[0]));
  return { perSkuFc, used, keys, encoding };
}

/** The library in this process, one Lua round trip a call: 1 and 50 SKUs per call. */
async function libraryReads(b: Bench, callsFor1: number, pick: Picks): Promise<Row[]> {
  const rows: Row[] = [];
  const reader = createBadgeReader({
    redis: b.redis,
    prefix: b.keys.prefix,
    partitions: b.keys.partitions.length,
    staleAfterMs: 10_000,
  });
  for (const n of [1, 50]) {
    const calls = n === 1 ? callsFor1 : Math.max(1000, Math.floor(callsFor1 / 4));
    const samples: number[] = [];
    for (let i = 0; i < 200; i++) await reader.getBadges(pick.region(), pick.skus(n)); // warm-up
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) {
      const region = pick.region();
      const skus = pick.skus(n);
      const s = performance.now();
      await reader.getBadges(region, skus);
      samples.push(performance.now() - s);
    }
    const secs = (performance.now() - t0) / 1000;
    const p = percentiles(samples);
    rows.push([`library`, n, 1, ms(p.p50), ms(p.p99), ms(p.p999), int(calls / secs)]);
  }
  return rows;
}

/** HTTP: the API in its own process, keep-alive clients in this one; 1 and 50 SKUs, concurrency 1 and 64. */
async function httpReads(b: Bench, seconds: number, pick: Picks): Promise<Row[]> {
  const rows: Row[] = [];
  const api = await startApiProcess(b);
  try {
    for (const [n, conns] of [
      [1, 1],
      [1, 64],
      [50, 1],
      [50, 64],
    ] as const) {
      const r = await httpLoad(
        api.port,
        conns,
        seconds,
        () => `/v1/badges?region=${pick.region()}&skus=${pick.skus(n).join(',')}`,
      );
      rows.push([`HTTP`, n, conns, ms(r.p50), ms(r.p99), ms(r.p999), int(r.rps)]);
      if (r.errors.size)
        console.warn(`HTTP ${n} SKUs x ${conns}: failed answers ${JSON.stringify(Object.fromEntries(r.errors))}`);
    }
  } finally {
    api.stop();
  }
  return rows;
}

interface SqlReads {
  /** Latency rows, for the table of every path. */
  rows: Row[];
  /** The load on PostgreSQL, per concurrency. */
  load: Row[];
  /** Orders in shop.orders, which the query sums over. */
  orders: number;
}

/** The design it replaces: the badge by a SQL query on the OLTP per request, 1 SKU, concurrency 1 and 16. */
async function sqlReads(b: Bench, seconds: number, pick: Picks): Promise<SqlReads> {
  // The design it replaces would need this index to count a day's load per FC (benchmark DB
  // only: the shop schema is not ours to change).
  await b.pool.query(`create index if not exists bench_orders_fc_placed on shop.orders (fc_id, placed_at)`);
  const orders = (await b.pool.query(`select count(*)::int as n from shop.orders`)).rows[0].n as number;
  const rows: Row[] = [];
  const load: Row[] = [];
  for (const conns of [1, 16]) {
    const r = await sqlLoad(b, conns, seconds, () => [pick.region(), pick.skus(1)]);
    rows.push([`SQL on the OLTP (replaced design)`, 1, conns, ms(r.p50), ms(r.p99), ms(r.p999), int(r.rps)]);
    load.push([conns, int(r.rps), int(r.blocksPerQuery), int(r.tuplesPerQuery), `${(r.cpuShare * 100).toFixed(0)}%`]);
  }
  return { rows, load, orders };
}

interface Report {
  size: CatalogueSize;
  /** Latency rows of every path: library, HTTP, SQL. */
  rows: Row[];
  sql: SqlReads;
  memory: Memory;
  /** The catalogue load, if this run loaded it. */
  load: Awaited<ReturnType<typeof ensureCatalogue>>;
}

function printReport({ size, rows, sql, memory, load }: Report): void {
  console.log(
    `\n## Reads (${size.skus.toLocaleString('en-US')} SKUs x ${size.fcsPerSku} FCs loaded, ${size.regions} regions x ${size.fcsPerRegion} FCs)\n`,
  );
  console.log(table(['path', 'SKUs/call', 'concurrency', 'p50 ms', 'p99 ms', 'p99.9 ms', 'calls/s'], rows));
  console.log(
    `\nLoad the SQL design puts on PostgreSQL (per second, and per badge query; ${sql.orders.toLocaleString('en-US')} orders in shop.orders, indexed by (fc_id, placed_at)):\n`,
  );
  console.log(
    table(
      ['concurrency', 'queries/s', 'buffer blocks/query', 'tuples read/query', 'postgres CPU (of 2 cores)'],
      sql.load,
    ),
  );
  console.log(`\n## Online store memory\n`);
  console.log(
    table(
      ['measure', 'value'],
      [
        ['bytes per SKU·FC (MEMORY USAGE of SKU hashes / FCs)', int(memory.perSkuFc)],
        ['Redis used_memory, total', `${(memory.used / 2 ** 20).toFixed(0)} MiB for ${int(memory.keys)} keys`],
        ['bytes per SKU·FC, whole instance', int(memory.used / (size.skus * size.fcsPerSku))],
        ['SKU hash encoding', String(memory.encoding)],
      ],
    ),
  );
  if (load.drain)
    console.log(
      `\nLoading drained ${int(load.drain.rows)} outbox rows in ${load.drain.seconds.toFixed(1)} s: ${int(load.drain.rows / load.drain.seconds)} rows/s.`,
    );
}

async function main() {
  const o = parseOptions();
  const size: CatalogueSize = { skus: o.skus, fcs: 30, regions: 10, fcsPerRegion: 3, fcsPerSku: 3 };
  const b = await openBench();
  try {
    const load = await ensureCatalogue(b, size, log);
    const pick = picks(size);
    const memory = await measureMemory(b, size, pick);
    const library = await libraryReads(b, o.calls, pick);
    const http = await httpReads(b, o.seconds, pick);
    const sql = await sqlReads(b, o.seconds, pick);
    printReport({ size, rows: [...library, ...http, ...sql.rows], sql, memory, load });
  } finally {
    await b.close();
  }
}

async function startApiProcess(b: Bench): Promise<{ port: number; stop(): void }> {
  const port = 18_000 + Math.floor(Math.random() * 1000);
  const child = spawn(process.execPath, ['--import', 'tsx', 'serving/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, API_PORT: String(port), REDIS_URL: b.config.REDIS_URL, REDIS_PREFIX: b.config.REDIS_PREFIX },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d) => String(d).includes('listening') && resolve());
    child.once('exit', (code) => reject(new Error(`API exited with ${code}`)));
  });
  return { port, stop: () => child.kill('SIGTERM') };
}

async function sqlLoad(b: Bench, conns: number, seconds: number, pick: () => [string, string[]]) {
  const stat = async () =>
    (
      await b.pool.query(
        `select blks_hit + blks_read as blocks, tup_returned + tup_fetched as tuples from pg_stat_database where datname = current_database()`,
      )
    ).rows[0];
  const before = await stat();
  const pgCpu0 = postgresCpuSeconds();
  const samples: number[] = [];
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: conns }, async () => {
      while (performance.now() < end) {
        const [region, skus] = pick();
        const s = performance.now();
        await b.pool.query(BADGES_SQL, [region, skus, new Date().toISOString()]);
        samples.push(performance.now() - s);
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  const after = await stat();
  const pgCpu = postgresCpuSeconds() - pgCpu0;
  const p = percentiles(samples);
  return {
    ...p,
    rps: samples.length / secs,
    blocksPerQuery: (after.blocks - before.blocks) / samples.length,
    tuplesPerQuery: (after.tuples - before.tuples) / samples.length,
    cpuShare: pgCpu / secs / 2,
  };
}

main().catch((err) => {
  console.error(`bench:read: ${err.stack}`);
  process.exit(1);
});
