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
 */
import { spawn } from 'node:child_process';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { httpLoad } from './http-load';
import { percentiles } from './stats';

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
