/**
 * The machine's own limits, measured in the same run as the pipeline's figures, so each result can
 * be printed beside the limit it is bounded by (shared machines are noisy; absolute numbers from
 * another day do not reproduce, ratios to the same run's limits do):
 *   - outbox scan: a raw (txid, id) index range scan of pipeline.outbox, every column the drain
 *     reads, delivered to this process (rows/s): the ceiling of any catch-up
 *   - Redis Lua apply: pipelined scripts of one HSET per operation, in the drain's chunk size
 *     (ops/s): the ceiling of the store writes
 *   - Redis round trip: PING from this process (ms): the floor of any read
 *   - bare HTTP: a node:http server in its own process answering "{}" (requests/s at concurrency 64,
 *     p50/p99 at concurrency 1): the ceiling and floor of the read API
 *   - outbox COPY (capture from the WAL): outbox rows written by COPY from this process into a
 *     table shaped like pipeline.outbox, in transactions of the capture's batch size (rows/s): the
 *     ceiling of capture into the outbox
 *   - slot decoding (capture from the WAL): the server decoding a slot's backlog by itself
 *     (pg_logical_slot_peek_binary_changes, nothing consumed), changes/s: the walsender's ceiling
 */
import { spawn } from 'node:child_process';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { pipeline as streamPipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { from as copyFrom } from 'pg-copy-streams';
import { masterNodes } from '../../store/redis-client';
import type { Bench } from './bench-env';
import { httpLoad } from './http-load';
import { int, ms, percentiles } from './stats';

/** The limits every end-to-end benchmark measures first (the outbox scan is measured where a backlog is). */
export interface MachineLimits {
  rtt: { p50: number; p99: number };
  luaOps: number;
  bare: { rps: number; p50: number; p99: number };
}

/** Redis round trip, Redis Lua apply (one node's: on a cluster, the first master's), bare HTTP. */
export async function measureMachineLimits(b: Bench, log: (s: string) => void): Promise<MachineLimits> {
  log('machine limits: Redis round trip, Redis Lua apply, bare HTTP ...');
  const rtt = await redisRoundTripMs(masterNodes(b.redis)[0]);
  const luaOps = await redisLuaOpsPerS(masterNodes(b.redis)[0], b.keys.prefix);
  const bare = await bareHttp(5);
  return { rtt, luaOps, bare };
}

/** The table rows of those limits: ['limit', 'value']. */
export function machineLimitRows({ rtt, luaOps, bare }: MachineLimits): string[][] {
  return [
    ['Redis round trip (PING) p50 / p99', `${ms(rtt.p50)} / ${ms(rtt.p99)} ms`],
    ['Redis pipelined Lua apply, one HSET per op, 500 ops per call', `${int(luaOps)} ops/s`],
    ['bare node:http server (own process): requests/s at concurrency 64', int(bare.rps)],
    ['bare node:http round trip p50 / p99 at concurrency 1', `${ms(bare.p50)} / ${ms(bare.p99)} ms`],
  ];
}

export async function outboxScanRowsPerS(
  pool: pg.Pool,
  maxRows = 500_000,
  chunk = 20_000,
): Promise<{ rowsPerS: number; rows: number }> {
  const client = await pool.connect();
  try {
    let after = { txid: '0', id: '0' };
    let rows = 0;
    const t0 = performance.now();
    while (rows < maxRows) {
      const r = await client.query(
        `select o.id::text as id, o.txid::text as txid, o.tbl, o.op, o.key, o.image, o.old_image, o.created_at
           from pipeline.outbox o where (o.txid, o.id) > ($1::xid8, $2::bigint) order by o.txid, o.id limit $3`,
        [after.txid, after.id, chunk],
      );
      rows += r.rows.length;
      if (r.rows.length < chunk) break;
      after = r.rows[r.rows.length - 1];
    }
    return { rowsPerS: rows / ((performance.now() - t0) / 1000), rows };
  } finally {
    client.release();
  }
}

const HSET_EACH = `for i = 1, #KEYS do redis.call('HSET', KEYS[i], ARGV[i * 2 - 1], ARGV[i * 2]) end return #KEYS`;

export async function redisLuaOpsPerS(redis: Redis, prefix: string, ops = 200_000, chunk = 500): Promise<number> {
  const sha = (await redis.script('LOAD', HSET_EACH)) as string;
  const t0 = performance.now();
  const perPipeline = 50_000;
  for (let base = 0; base < ops; base += perPipeline) {
    const p = redis.pipeline();
    for (let i = base; i < Math.min(ops, base + perPipeline); i += chunk) {
      const keys: string[] = [];
      const args: string[] = [];
      for (let j = i; j < Math.min(ops, i + chunk); j++) {
        keys.push(`${prefix}limit:${j % 20_000}`);
        args.push(`F${j % 3}`, `${j}|${j}`);
      }
      p.evalsha(sha, keys.length, ...keys, ...args);
    }
    await p.exec();
  }
  const rate = ops / ((performance.now() - t0) / 1000);
  const stream = redis.scanStream({ match: `${prefix}limit:*`, count: 1000 });
  for await (const keys of stream as AsyncIterable<string[]>) if (keys.length) await redis.del(...keys);
  return rate;
}

export async function redisRoundTripMs(redis: Redis, n = 20_000): Promise<{ p50: number; p99: number }> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await redis.ping();
    samples.push(performance.now() - t);
  }
  return percentiles(samples);
}

export async function bareHttp(seconds: number): Promise<{ rps: number; p50: number; p99: number }> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const s=require('http').createServer((q,r)=>{r.writeHead(200,{'content-type':'application/json'});r.end('{}')});s.listen(0,'127.0.0.1',()=>console.log(s.address().port))`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout!.once('data', (d) => resolve(Number(String(d).trim())));
      child.once('exit', (code) => reject(new Error(`bare HTTP server exited with ${code}`)));
    });
    const one = await httpLoad(port, 1, seconds, () => '/');
    const many = await httpLoad(port, 64, seconds, () => '/');
    return { rps: many.rps, p50: one.p50, p99: one.p99 };
  } finally {
    child.kill('SIGTERM');
  }
}

/**
 * Outbox-shaped rows (inventory updates with their JSON image) written by COPY from this process
 * into a copy of pipeline.outbox (its columns, defaults, identity and indexes; WAL-logged), in
 * transactions of `perTransaction` rows and writes of 5,000 lines, as capture writes them. The
 * copy is dropped afterwards.
 */
export async function outboxCopyRowsPerS(pool: pg.Pool, rows = 500_000, perTransaction = 20_000): Promise<number> {
  const client = await pool.connect();
  const table = 'pipeline.bench_outbox_copy_limit';
  try {
    await client.query(`drop table if exists ${table}`);
    await client.query(`create table ${table} (like pipeline.outbox including all)`);
    const line = (i: number) => {
      const sku = `SKU-${String(i % 1_000_000).padStart(7, '0')}`;
      const fc = `FC-${String(i % 30).padStart(3, '0')}`;
      const image = `{"sku_id":"${sku}","fc_id":"${fc}","on_hand":${i % 60},"reserved":0,"updated_at":"2026-12-04T00:00:00.000000+00:00"}`;
      return `inventory\tU\t${sku}|${fc}\t${image}\t\\N\t0\n`;
    };
    const t0 = performance.now();
    for (let base = 0; base < rows; base += perTransaction) {
      const n = Math.min(perTransaction, rows - base);
      const parts = function* () {
        for (let i = 0; i < n; i += 5_000)
          yield Array.from({ length: Math.min(5_000, n - i) }, (_, j) => line(base + i + j)).join('');
      };
      await client.query('begin');
      await streamPipeline(
        Readable.from(parts()),
        client.query(copyFrom(`copy ${table} (tbl, op, key, image, old_image, route) from stdin`)),
      );
      await client.query('commit');
    }
    return rows / ((performance.now() - t0) / 1000);
  } finally {
    await client.query(`drop table if exists ${table}`).catch(() => undefined);
    client.release();
  }
}

/**
 * The server decoding the slot's pending changes by itself, nothing consumed (the slot must be
 * idle: no capture streaming it): changes (inserts, updates, deletes) per second over everything
 * the slot holds.
 */
export async function slotDecodeChangesPerS(
  source: pg.ClientBase,
  slot: string,
  publication: string,
): Promise<{ changes: number; perS: number }> {
  const t0 = performance.now();
  const r = await source.query<{ n: string }>(
    `select count(*) filter (where substr(data, 1, 1) in ('I', 'U', 'D'))::text as n
       from pg_logical_slot_peek_binary_changes($1, null, null, 'proto_version', '1', 'publication_names', $2)`,
    [slot, publication],
  );
  const changes = Number(r.rows[0]!.n);
  return { changes, perS: changes / ((performance.now() - t0) / 1000) };
}
