/**
 * Freshness probes shared by the benchmarks (`npm run bench`, `npm run bench:cluster`,
 * `npm run bench:e2e-logical`): a source commit timed until the read API shows it, and a write
 * transaction held open meanwhile. `shop` is what holds shop.skus: the bench database, or under
 * capture from the WAL the inventory source.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import http from 'node:http';
import type pg from 'pg';
import type { Bench } from './bench-env';
import { int, ms, percentiles } from './stats';

type Shop = Pick<Bench, 'pool'>;

export function httpGetJson(port: number, p: string, agent: http.Agent): Promise<any> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: p, agent }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(JSON.parse(body)));
      })
      .on('error', reject);
  });
}

/** Probes slower than this are logged with their commit time (BENCH_SLOW_PROBE_MS; default 500). */
const SLOW_PROBE_MS = Number(process.env.BENCH_SLOW_PROBE_MS) > 0 ? Number(process.env.BENCH_SLOW_PROBE_MS) : 500;

/** Four freshness probe SKUs, and one SKU row a held-open transaction holds (nobody else writes it). */
export const PROBES = ['PROBE-1', 'PROBE-2', 'PROBE-3', 'PROBE-4'];
export const HELD_PROBE = 'PROBE-HOLD';
const PROBE_ROWS = [...PROBES, HELD_PROBE];

/** Creates the probe SKU rows (paused), or sets them back to paused if an earlier run left them. */
export async function insertProbeSkus(b: Shop): Promise<void> {
  await b.pool.query(
    `insert into shop.skus (sku_id, title, lifecycle) select unnest($1::text[]), 'freshness probe', 'paused' on conflict (sku_id) do update set lifecycle = 'paused'`,
    [PROBE_ROWS],
  );
}

/** Deletes the probe SKU rows: the catalogue as it was. */
export async function deleteProbeSkus(b: Shop): Promise<void> {
  await b.pool.query(`delete from shop.skus where sku_id = any($1)`, [PROBE_ROWS]);
}

export interface HeldTransaction {
  release(): Promise<void>;
}

/** A write transaction held open (it holds an xid and a row lock) until release(). */
export async function holdOpenTransaction(b: Shop, sku: string): Promise<HeldTransaction> {
  return holdOpenWrite(b.pool, `update shop.skus set title = 'held open by the benchmark' where sku_id = $1`, [sku]);
}

/** A transaction that ran the write `sql` and stays open (it holds an xid) until release(), which rolls it back. */
export async function holdOpenWrite(pool: pg.Pool, sql: string, params: unknown[] = []): Promise<HeldTransaction> {
  const client = await pool.connect();
  await client.query('begin');
  await client.query(sql, params);
  return {
    async release() {
      await client.query('rollback');
      client.release();
    },
  };
}

/**
 * Freshness probes: each flips one probe SKU's lifecycle (paused <-> discontinued: answers that do
 * not depend on stock or capacity, which the traffic keeps changing), notes when the commit
 * returned, and polls the API until the badge shows it. Several probes run at once; the probe SKUs
 * are outside the simulator's id range, so its traffic never touches them.
 */
export async function probeFreshness(
  b: Shop,
  apiPort: number,
  durationMs: number,
  probes: string[],
  region: string,
  /** If given: each probe goes on until the answer's asOf is at or after the commit, and that time goes here. */
  vouched?: number[],
  /** If given: probes committed before this time (performance.now()) go here instead (a load's start). */
  warmup?: { until: number; samples: number[] },
): Promise<number[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: probes.length });
  const samples: number[] = [];
  const end = Date.now() + durationMs;
  await Promise.all(
    probes.map(async (sku, n) => {
      let paused = true;
      await sleep(n * 37);
      while (Date.now() < end) {
        paused = !paused;
        await b.pool.query(`update shop.skus set lifecycle = $2 where sku_id = $1`, [
          sku,
          paused ? 'paused' : 'discontinued',
        ]);
        const committed = performance.now();
        const committedAt = Date.now();
        const want = paused ? 'paused' : 'discontinued';
        for (;;) {
          const r = await httpGetJson(apiPort, `/v1/badges/${sku}?region=${region}`, agent);
          if (r.reason === want) break;
          if (performance.now() - committed > 30_000) throw new Error(`probe ${sku}: not visible after 30 s`);
          await sleep(2);
        }
        const took = performance.now() - committed;
        if (warmup && committed < warmup.until) {
          warmup.samples.push(took);
          await sleep(50);
          continue;
        }
        samples.push(took);
        if (vouched)
          vouched.push(await untilAsOf(apiPort, `/v1/badges/${sku}?region=${region}`, agent, committedAt, committed));
        // Outliers with their time, so a stall can be matched with what ran then (logs, metrics).
        if (took > SLOW_PROBE_MS)
          process.stderr.write(
            `  slow probe: ${sku} ${took.toFixed(0)} ms, committed at ${new Date(Date.now() - took).toISOString()}\n`,
          );
        await sleep(50);
      }
    }),
  );
  agent.destroy();
  return samples;
}

/** Milliseconds from `committed` (performance.now()) until the API's asOf is at or after `committedAt` (wall clock). */
async function untilAsOf(
  apiPort: number,
  path: string,
  agent: http.Agent,
  committedAt: number,
  committed: number,
): Promise<number> {
  for (;;) {
    const r = await httpGetJson(apiPort, path, agent);
    if (r.asOf && Date.parse(r.asOf) >= committedAt) return performance.now() - committed;
    if (performance.now() - committed > 30_000) throw new Error(`probe: asOf not past the commit after 30 s`);
    // (the time asOf speaks for moves in steps of CAPTURE_TICK_MS or a drain batch: no need to ask
    // more often; asOf itself is the API host's now less the lag, ADR 0016)
    await sleep(10);
  }
}

/** One freshness run: its load source and rates, and the probes' samples (ms). */
export interface FreshnessRun {
  source: string;
  rate: number;
  open: boolean;
  achieved: number;
  samples: number[];
  /** Probes of the load's first seconds, kept apart from `samples` (when the run had a warm-up). */
  warmup?: number[];
}

/**
 * Probes freshness for `seconds` while `startLoad` runs (its promise: the achieved changes/s),
 * with the write transactions `hold` opens held open meanwhile. With `warmupSeconds` the load
 * runs that much longer (the caller gives it `seconds + warmupSeconds`), and probes committed in
 * its first `warmupSeconds` are kept apart (`warmup`): a load's start is a burst (pgbench, given a
 * rate, runs the transactions its connections' start-up delayed as fast as it can) that says how
 * quickly the pipeline recovers, not what it does while the rate flows.
 */
export async function probeUnderLoad(
  shop: Shop,
  apiPort: number,
  seconds: number,
  spec: Pick<FreshnessRun, 'source' | 'rate' | 'open'>,
  startLoad: () => Promise<number>,
  opts: { hold?: () => Promise<HeldTransaction>; vouched?: number[]; region: string; warmupSeconds?: number },
): Promise<FreshnessRun> {
  const held = opts.hold ? await opts.hold() : null;
  const warmupMs = (opts.warmupSeconds ?? 0) * 1000;
  const warmup = warmupMs > 0 ? { until: performance.now() + warmupMs, samples: [] as number[] } : undefined;
  const load = startLoad();
  // A load that fails while the probes run is reported by the `await load` below, not as an
  // unhandled rejection that ends the process before it can clean up.
  load.catch(() => undefined);
  try {
    const duration = seconds * 1000 + warmupMs;
    const samples = await probeFreshness(shop, apiPort, duration, PROBES, opts.region, opts.vouched, warmup);
    return { ...spec, achieved: await load, samples, ...(warmup ? { warmup: warmup.samples } : {}) };
  } finally {
    await held?.release();
  }
}

export const FRESHNESS_HEADERS = [
  'load source',
  'target changes/s',
  'achieved changes/s',
  'write transaction held open',
  'probes',
  'p50 ms',
  'p99 ms',
  'max ms',
  'p99 / bare HTTP p99',
  "the load's first seconds (warm-up, apart): probes · p99 / max ms",
];

/** The probes of a load's first seconds (kept apart from the measured ones): count · p99 / max ms. */
function warmupCell(samples: number[] | undefined): string {
  if (!samples?.length) return '-';
  const p = percentiles(samples);
  return `${samples.length} · ${ms(p.p99)} / ${ms(p.max)}`;
}

/** The table rows of freshness runs (FRESHNESS_HEADERS), and the highest achieved rate with p99 under `p99Under` ms. */
export function freshnessRows(
  runs: FreshnessRun[],
  bareP99: number,
  p99Under = 250,
): { rows: (string | number)[][]; best: number } {
  let best = 0;
  const rows = runs.map(({ source, rate, achieved, samples, open, warmup }) => {
    const p = percentiles(samples);
    if (p.p99 < p99Under) best = Math.max(best, achieved);
    return [
      source,
      int(rate),
      int(achieved),
      open ? 'yes' : 'no',
      samples.length,
      ms(p.p50),
      ms(p.p99),
      ms(p.max),
      `${(p.p99 / bareP99).toFixed(0)}x`,
      warmupCell(warmup),
    ];
  });
  return { rows, best };
}
