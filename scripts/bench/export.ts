/**
 * `npm run bench:export`: export time and peak memory for a day of N changes (default 1,000,000
 * and 5,000,000). The day's landing files are synthesized with DuckDB (catalogue rows, then
 * inventory updates and orders spread over the day), then `exportDay` runs in a child process
 * whose peak RSS (DuckDB included: it runs in-process) is read from /proc.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { landingDir } from '../../activities/export/day-inputs';
import { copyToParquet, openDuck } from '../../activities/export/duckdb';
import { table, int } from './stats';

const ROOT = path.resolve(__dirname, '..', '..');
const DATE = '2026-01-15';

async function synthesize(dir: string, n: number, skus: number): Promise<void> {
  const duck = await openDuck('2GB');
  const d0 = Date.parse(`${DATE}T00:00:00Z`);
  const fcs = 30;
  const q = (i: string) => `lpad((${i})::varchar, 7, '0')`;
  const f = (i: string) => `lpad((${i})::varchar, 3, '0')`;
  try {
    // catalogue: FCs, region ranks, SKUs, 3 inventory rows per SKU; then updates and orders.
    const cat = skus * 4 + fcs * 2;
    await copyToParquet(
      duck.conn,
      `with s as (select i from range(${n}) t(i)),
       r as (select i,
         case
           when i < ${fcs} then 'fulfillment_centers'
           when i < ${fcs * 2} then 'region_fc'
           when i < ${fcs * 2 + skus} then 'skus'
           when i < ${cat} then 'inventory'
           when i % 3 = 0 then 'orders'
           else 'inventory' end as tbl from s)
       select (100000 + i // 4)::ubigint as txid, (i + 1)::bigint as id, tbl,
         case when i < ${cat} or tbl = 'orders' then 'I' else 'U' end as op, '' as key,
         case tbl
           when 'fulfillment_centers' then json_object('fc_id', 'FC-' || ${f('i')}, 'region', 'R-' || (i % 10), 'daily_capacity', 100000)
           when 'region_fc' then json_object('region', 'R-' || lpad(((i - ${fcs}) % 10)::varchar, 2, '0'), 'fc_id', 'FC-' || ${f(`i - ${fcs}`)}, 'rank', (i - ${fcs}) // 10 + 1)
           when 'skus' then json_object('sku_id', 'SKU-' || ${q(`i - ${fcs * 2}`)}, 'title', 't', 'lifecycle', 'active')
           when 'orders' then json_object('order_id', i, 'sku_id', 'SKU-' || ${q(`i % ${skus}`)}, 'fc_id', 'FC-' || ${f(`(i % ${skus} + (i % 3) * 10) % ${fcs}`)}, 'qty', 1 + i % 3, 'status', 'placed', 'placed_at', strftime(epoch_ms(${d0} + (i * 86399000 // ${n})), '%Y-%m-%dT%H:%M:%S.%f+00:00'))
           else json_object('sku_id', 'SKU-' || ${q(`i % ${skus}`)}, 'fc_id', 'FC-' || ${f(`(i % ${skus} + (i // ${skus} % 3) * 10) % ${fcs}`)}, 'on_hand', 10 + i % 40, 'reserved', i % 5)
         end as image,
         null::json as old_image,
         (${d0} + (i * 86399000 // ${n}))::bigint as source_ms,
         (${d0} + (i * 86399000 // ${n}) + 250)::bigint as applied_ms
       from r`,
      path.join(landingDir(dir, DATE), 'synthetic.parquet'),
    );
  } finally {
    duck.close();
  }
}

function runExport(dir: string, memoryLimit: string): Promise<{ seconds: number; peakRssMb: number; out: string }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/export-day.ts', '--date', DATE, '--dir', dir], {
      cwd: ROOT,
      env: { ...process.env, EXPORT_MEMORY_LIMIT: memoryLimit },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    let peak = 0;
    child.stdout!.on('data', (d) => (out += d));
    const timer = setInterval(() => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) peak = Math.max(peak, Number(m[1]) / 1024);
      } catch {
        // exited
      }
    }, 100);
    child.on('close', (code) => {
      // (after stdout is read to its end: at 'exit' output may still be unread)
      clearInterval(timer);
      if (code !== 0) reject(new Error(`export exited with ${code}: ${out}`));
      else resolve({ seconds: (Date.now() - t0) / 1000, peakRssMb: peak, out });
    });
  });
}

async function main() {
  const o = new Command()
    .option('--changes <list>', 'comma-separated day sizes', '1000000,5000000')
    .option('--skus <n>', 'catalogue size', (v) => Number(v), 100_000)
    .option('--memory-limit <size>', 'DuckDB memory limit for the export', '1GB')
    .parse()
    .opts<{ changes: string; skus: number; memoryLimit: string }>();
  const rows: (string | number)[][] = [];
  for (const n of o.changes.split(',').map(Number)) {
    const dir = path.join(ROOT, '.data', 'bench-export', String(n));
    fs.rmSync(dir, { recursive: true, force: true });
    process.stderr.write(`synthesizing ${int(n)} changes ...\n`);
    await synthesize(dir, n, o.skus);
    process.stderr.write(`exporting ...\n`);
    const r = await runExport(dir, o.memoryLimit);
    const size = fs
      .readdirSync(path.join(dir, `date=${DATE}`))
      .reduce((a, f) => a + fs.statSync(path.join(dir, `date=${DATE}`, f)).size, 0);
    rows.push([
      int(n),
      int(o.skus),
      r.seconds.toFixed(1),
      int(n / r.seconds),
      int(r.peakRssMb),
      o.memoryLimit,
      `${(size / 2 ** 20).toFixed(0)} MiB`,
    ]);
  }
  console.log(`\n## Nightly export (one UTC day, ${o.skus.toLocaleString('en-US')} SKUs x 3 FCs, 10 regions)\n`);
  console.log(
    table(
      ['changes in the day', 'SKUs', 'seconds', 'changes/s', 'peak RSS MiB', 'DuckDB memory_limit', 'partition size'],
      rows,
    ),
  );
}

main().catch((err) => {
  console.error(`bench:export: ${err.stack}`);
  process.exit(1);
});
