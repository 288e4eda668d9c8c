/**
 * `npm run bench:cluster`: the online store on one Redis and on a local Redis Cluster (3 masters
 * with a replica each, started here from the installed redis-server), in one run, same catalogue:
 *   1. catch-up: a backlog of inventory restocks drained by one drain (no Temporal: the activities
 *      back to back, as `npm run bench:drain`), and on the cluster by 1, 2 and 4 drain shards (each
 *      shard's activities back to back, the shards side by side in this process), changes/s, with
 *      the Redis work each change costs (script calls and Redis CPU per change, over the masters);
 *   2. reads: the library, 1 and 50 SKUs per call, p50/p99;
 *   3. freshness on the cluster: the real pipeline (Temporal dev server, worker processes, read
 *      API) at a sustained simulator rate with a write transaction held open, commit -> visible
 *      through the API, p50/p99, and the drain batches (Temporal activities) per second it took.
 * Each store has its own benchmark database, so the two never share a cursor.
 * These are the per-unit costs the sizing in docs/benchmarks.md rests on.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Command, InvalidArgumentError } from 'commander';
import { reshardDrain } from '../../activities/drain/reshard';
import { drainPendingRows } from '../../outbox';
import { createBadgeReader } from '../../serving/badge-reader';
import { CatalogueSize, regionId, skuId } from '../../simulator/catalogue';
import { rng, runTraffic } from '../../simulator/traffic';
import { masterNodes } from '../../store/redis-client';
import { setEpoch } from '../../store/watermark';
import { positiveInt } from '../lib/cli-args';
import { LocalRedisCluster, startLocalRedisCluster } from '../lib/redis-cluster';
import { DATA_DIR } from '../lib/temporal-server';
import { redisCpuSeconds } from './cpu';
import { Bench, BENCH_DATABASE_URL, benchConfig, drainAll, ensureCatalogue, openBench } from './bench-env';
import {
  deleteProbeSkus,
  HELD_PROBE,
  holdOpenTransaction,
  insertProbeSkus,
  PROBES,
  probeFreshness,
} from './freshness-probes';
import { startBenchPipeline } from './processes';
import { int, ms, percentiles, table } from './stats';

const log = (s: string) => console.log(s);

function shardList(v: string): number[] {
  const list = v.split(',').map((x) => Number(x.trim()));
  if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n < 1 || n > 16))
    throw new InvalidArgumentError('--shards takes a comma-separated list of whole numbers from 1 to 16, e.g. 1,2,4');
  return list;
}

/** Script calls and CPU seconds of every master, from INFO (commandstats, cpu). */
async function redisWork(b: Bench): Promise<{ calls: number; cpuS: number }> {
  let calls = 0;
  for (const node of masterNodes(b.redis)) {
    const stats = await node.info('commandstats');
    for (const m of stats.matchAll(/cmdstat_(evalsha|eval|evalsha_ro|eval_ro|fcall):calls=(\d+)/g))
      calls += Number(m[2]);
  }
  return { calls, cpuS: await redisCpuSeconds(masterNodes(b.redis)) };
}

/** Restocks in transactions of 1,000 SKUs (every FC of each): a backlog of about `changes` rows. */
async function writeBacklog(b: Bench, skus: number, changes: number): Promise<void> {
  let written = 0;
  for (let from = 0; written < changes; from += 1000) {
    const r = await b.pool.query(
      `update shop.inventory set on_hand = on_hand + 1, updated_at = now()
        where sku_id >= 'SKU-' || lpad($1::text, 7, '0') and sku_id < 'SKU-' || lpad($2::text, 7, '0')`,
      [from % skus, Math.min((from % skus) + 1000, skus)],
    );
    written += r.rowCount ?? 0;
  }
  await b.pool.query('analyze pipeline.outbox');
}

async function catchUp(b: Bench, skus: number, backlog: number) {
  await writeBacklog(b, skus, backlog);
  const before = await redisWork(b);
  // the drain's own CPU (this process runs every shard's activities)
  const cpu0 = process.cpuUsage();
  const r = await drainAll(b);
  const cpu = process.cpuUsage(cpu0);
  const after = await redisWork(b);
  return {
    rows: r.rows,
    perS: r.rows / r.seconds,
    callsPerChange: (after.calls - before.calls) / r.rows,
    redisCpuUsPerChange: ((after.cpuS - before.cpuS) / r.rows) * 1e6,
    drainCpuUsPerChange: (cpu.user + cpu.system) / r.rows,
  };
}

async function reads(b: Bench, skus: number, calls: number) {
  const random = rng(11);
  const reader = createBadgeReader({
    redis: b.redis,
    prefix: b.keys.prefix,
    partitions: b.keys.partitions.length,
    staleAfterMs: 60_000,
  });
  const out: Record<number, { p50: number; p99: number }> = {};
  for (const n of [1, 50]) {
    const samples: number[] = [];
    const total = n === 1 ? calls : Math.max(1000, Math.floor(calls / 4));
    for (let i = 0; i < total + 200; i++) {
      const pick = Array.from(new Set(Array.from({ length: n }, () => skuId(Math.floor(random() * skus)))));
      const t = performance.now();
      await reader.getBadges(regionId(Math.floor(random() * 6)), pick);
      if (i >= 200) samples.push(performance.now() - t); // the first 200 warm up
    }
    const p = percentiles(samples);
    out[n] = { p50: p.p50, p99: p.p99 };
  }
  return out;
}

interface Options {
  skus: number;
  backlog: number;
  calls: number;
  rate: number;
  seconds: number;
  replicas: number;
  shards: number[];
  freshnessShards: number;
}

type Row = (string | number)[];

function parseOptions(): Options {
  return new Command()
    .name('npm run bench:cluster --')
    .option('--skus <n>', 'catalogue size (loaded into each store if missing)', positiveInt('--skus'), 200_000)
    .option('--backlog <changes>', 'changes in each catch-up backlog', positiveInt('--backlog'), 300_000)
    .option('--calls <n>', 'library read calls for 1 SKU (a quarter of it for 50)', positiveInt('--calls'), 20_000)
    .option('--rate <changes/s>', 'simulator rate of the cluster freshness run', positiveInt('--rate'), 2000)
    .option('--seconds <s>', 'seconds of the freshness run', positiveInt('--seconds'), 30)
    .option('--replicas <n>', 'replicas per master of the local cluster', (v) => Number(v), 1)
    .option('--shards <list>', 'drain shard counts of the cluster catch-up', shardList, [1, 2, 4])
    .option('--freshness-shards <n>', 'drain shards of the cluster freshness run', positiveInt('--freshness-shards'), 1)
    .parse()
    .opts<Options>();
}

/** The two stores compared, each with its own benchmark database: one Redis, and the local cluster. */
async function openStores(cluster: LocalRedisCluster): Promise<Record<string, Bench>> {
  const clusterUrl = new URL(BENCH_DATABASE_URL);
  clusterUrl.pathname = `${clusterUrl.pathname}_cluster`;
  return {
    'one Redis': await openBench(benchConfig({ DRAIN_BATCH_SIZE: '20000' })),
    'Redis Cluster': await openBench(
      benchConfig({
        DATABASE_URL: clusterUrl.toString(),
        REDIS_CLUSTER_NODES: cluster.seeds.join(','),
        REDIS_PREFIX: 'fbc:',
        DRAIN_BATCH_SIZE: '20000',
      }),
    ),
  };
}

const reshard = (b: Bench, shards: number) =>
  reshardDrain({ pool: b.pool, redis: b.redis, keys: b.keys, config: b.config }, shards);

/** One store's figures: a catch-up row per drain shard count, and its reads row. */
async function benchStore(name: string, b: Bench, size: CatalogueSize, o: Options) {
  log(`${name} (${b.keys.partitions.length} partition(s)): catalogue ...`);
  await ensureCatalogue(b, size, log);
  await setEpoch(b.redis, b.keys, 'bench');
  await b.redis.set(b.keys.partitionCount, String(b.keys.partitions.length));
  const catchUpRows: Row[] = [];
  // one Redis has one partition, so one drain; the cluster's 16 partitions split into shards
  for (const shards of b.keys.partitions.length === 1 ? [1] : o.shards) {
    await reshard(b, shards);
    log(`${name}: catch-up of ${int(o.backlog)} changes, ${shards} drain shard(s) ...`);
    const c = await catchUp(b, size.skus, o.backlog);
    catchUpRows.push([
      name,
      b.keys.partitions.length,
      shards,
      int(c.rows),
      int(c.perS),
      c.callsPerChange.toFixed(3),
      int(c.redisCpuUsPerChange),
      c.drainCpuUsPerChange.toFixed(1),
    ]);
  }
  log(`${name}: reads ...`);
  const r = await reads(b, size.skus, o.calls);
  return { catchUpRows, readRow: [name, ms(r[1].p50), ms(r[1].p99), ms(r[50].p50), ms(r[50].p99)] };
}

const drainBatches = async (b: Bench) =>
  Number((await b.pool.query(`select count(*)::int as n from pipeline.drain_snapshots`)).rows[0].n);

/**
 * The probes while the simulator runs at --rate for --seconds with a write transaction held open:
 * the freshness row (with the drain batches per second the pipeline completed meanwhile).
 */
async function probeUnderLoad(b: Bench, apiPort: number, size: CatalogueSize, o: Options): Promise<Row> {
  const batchesBefore = await drainBatches(b);
  const held = await holdOpenTransaction(b, HELD_PROBE);
  let samples: number[];
  let stats: Awaited<ReturnType<typeof runTraffic>>;
  try {
    const traffic = runTraffic(b.pool, {
      rate: o.rate,
      durationMs: o.seconds * 1000,
      connections: 8,
      seed: 3,
      size,
    });
    samples = await probeFreshness(b, apiPort, o.seconds * 1000, PROBES, regionId(0));
    stats = await traffic;
  } finally {
    await held.release();
  }
  const batches = await drainBatches(b);
  const p = percentiles(samples);
  return [
    int(stats.changes / (stats.elapsedMs / 1000)),
    samples.length,
    ms(p.p50),
    ms(p.p99),
    ms(p.max),
    ((batches - batchesBefore) / o.seconds).toFixed(1),
  ];
}

/** Freshness on the cluster, end to end: the real pipeline started, caught up, then probed under load. */
async function clusterFreshness(b: Bench, size: CatalogueSize, o: Options): Promise<Row> {
  await reshard(b, o.freshnessShards);
  log(
    `Redis Cluster: freshness at ${int(o.rate)} changes/s with a write transaction open, ${o.freshnessShards} drain shard(s), ${o.seconds} s ...`,
  );
  const pipeline = await startBenchPipeline(b.config, o.freshnessShards);
  log('  pipeline started; waiting for the drain to catch up ...');
  try {
    while ((await drainPendingRows(b.pool, b.keys, 1_000_000)).rows > 0) await sleep(500);
    log('  caught up; probing ...');
    await insertProbeSkus(b);
    const fresh = await probeUnderLoad(b, pipeline.apiPort, size, o);
    await deleteProbeSkus(b);
    return fresh;
  } catch (err) {
    console.error(`bench:cluster: the freshness run failed: ${(err as Error).stack}`);
    throw err;
  } finally {
    await pipeline.stop();
  }
}

function printReport(o: Options, size: CatalogueSize, catchUpRows: Row[], readRows: Row[], fresh: Row): void {
  console.log(
    `\n## One Redis and a Redis Cluster (3 masters x ${o.replicas} replica), ${int(size.skus)} SKUs x 3 FCs, one run\n`,
  );
  console.log('### Catch-up (each drain shard: activities back to back; shards side by side)\n');
  console.log(
    table(
      [
        'store',
        'partitions',
        'drain shards',
        'changes',
        'changes/s',
        'script calls per change',
        'Redis CPU µs per change (all masters)',
        'drain CPU µs per change (Node)',
      ],
      catchUpRows,
    ),
  );
  console.log('\n### Reads (library, in this process)\n');
  console.log(table(['store', '1 SKU p50 ms', '1 SKU p99 ms', '50 SKUs p50 ms', '50 SKUs p99 ms'], readRows));
  console.log(
    `\n### Freshness on the cluster (Temporal, worker processes, API; a write transaction held open; ${o.freshnessShards} drain shard(s))\n`,
  );
  console.log(table(['changes/s', 'probes', 'p50 ms', 'p99 ms', 'max ms', 'completed drain batches per s'], [fresh]));
}

async function main(): Promise<void> {
  const o = parseOptions();
  const size: CatalogueSize = { skus: o.skus, fcs: 18, regions: 6, fcsPerRegion: 3, fcsPerSku: 3 };
  const dir = path.join(DATA_DIR, 'bench', 'redis-cluster');
  await fs.mkdir(dir, { recursive: true });
  log(`starting a local Redis Cluster: 3 masters, ${o.replicas} replica(s) each ...`);
  const cluster = await startLocalRedisCluster({ dir, masters: 3, replicasPerMaster: o.replicas });
  const stores = await openStores(cluster);
  try {
    const catchUpRows: Row[] = [];
    const readRows: Row[] = [];
    for (const [name, b] of Object.entries(stores)) {
      const r = await benchStore(name, b, size, o);
      catchUpRows.push(...r.catchUpRows);
      readRows.push(r.readRow);
    }
    const fresh = await clusterFreshness(stores['Redis Cluster'], size, o);
    printReport(o, size, catchUpRows, readRows, fresh);
  } finally {
    for (const b of Object.values(stores)) await b.close();
    await cluster.stop();
  }
}

main().catch((err) => {
  console.error(`bench:cluster: ${err.stack ?? err.message}`);
  process.exit(1);
});
