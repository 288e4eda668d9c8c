/**
 * Freshness probes shared by the benchmarks (`npm run bench`, `npm run bench:cluster`): a source
 * commit timed until the read API shows it, and a write transaction held open meanwhile.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import http from 'node:http';
import type { Bench } from './bench-env';

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

/** Four freshness probe SKUs, and one SKU row a held-open transaction holds (nobody else writes it). */
export const PROBES = ['PROBE-1', 'PROBE-2', 'PROBE-3', 'PROBE-4'];
export const HELD_PROBE = 'PROBE-HOLD';
const PROBE_ROWS = [...PROBES, HELD_PROBE];

/** Creates the probe SKU rows (paused), or sets them back to paused if an earlier run left them. */
export async function insertProbeSkus(b: Bench): Promise<void> {
  await b.pool.query(
    `insert into shop.skus (sku_id, title, lifecycle) select unnest($1::text[]), 'freshness probe', 'paused' on conflict (sku_id) do update set lifecycle = 'paused'`,
    [PROBE_ROWS],
  );
}

/** Deletes the probe SKU rows: the catalogue as it was. */
export async function deleteProbeSkus(b: Bench): Promise<void> {
  await b.pool.query(`delete from shop.skus where sku_id = any($1)`, [PROBE_ROWS]);
}

/** A write transaction held open (it holds an xid and a row lock) until release(). */
export async function holdOpenTransaction(b: Bench, sku: string): Promise<{ release(): Promise<void> }> {
  const client = await b.pool.connect();
  await client.query('begin');
  await client.query(`update shop.skus set title = 'held open by the benchmark' where sku_id = $1`, [sku]);
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
  b: Bench,
  apiPort: number,
  durationMs: number,
  probes: string[],
  region: string,
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
        const want = paused ? 'paused' : 'discontinued';
        for (;;) {
          const r = await httpGetJson(apiPort, `/v1/badges/${sku}?region=${region}`, agent);
          if (r.reason === want) break;
          if (performance.now() - committed > 30_000) throw new Error(`probe ${sku}: not visible after 30 s`);
          await sleep(2);
        }
        const took = performance.now() - committed;
        samples.push(took);
        // Outliers with their time, so a stall can be matched with what ran then (logs, metrics).
        if (took > 500)
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
