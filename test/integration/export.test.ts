/**
 * The landing area and the nightly export, read back with DuckDB: every change once, contiguous
 * non-overlapping intervals, end-of-day badges equal to the online answers, identical re-runs,
 * and a killed export leaving no partial partition.
 */
import { rewindCursor } from '../support/cursor';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities';
import { landChanges, openDuck, sqlString } from '../../activities/export/landing';
import { partitionDir } from '../../activities/export/export-day';
import { createBadgeReader } from '../../serving/badge-reader';
import { CatalogueSize, regionId, seedCatalogue } from '../../simulator/catalogue';
import { runTraffic } from '../../simulator/traffic';
import { exportWorkflow } from '../../workflows';
import { eventually, pipelineClients, resetState, sharedTestServer, startWorker, temporalClient, testClients } from '../support/env';

const taskQueue = `export-${process.pid}`;
const c = testClients({ TEMPORAL_TASK_QUEUE: taskQueue, LANDING_MAX_ROWS: '2000' });
const dir = path.resolve(c.config.EXPORT_DIR);
const acts = createActivities(pipelineClients(c));
const size: CatalogueSize = { skus: 300, fcs: 6, regions: 3, fcsPerRegion: 2, fcsPerSku: 2 };
const today = new Date().toISOString().slice(0, 10);
const { address, bundlePath } = sharedTestServer();
let duck: Awaited<ReturnType<typeof openDuck>>;

async function drainAll() {
  for (;;) if ((await acts.drainBatch({ owner: 'export-test' })).outcome !== 'applied') return;
}
async function rows(sql: string): Promise<Record<string, unknown>[]> {
  return (await duck.conn.runAndReadAll(sql)).getRowObjects() as Record<string, unknown>[];
}
const file = (name: string) => sqlString(path.join(partitionDir(dir, today), name));
function digest(folder: string): Record<string, string> {
  return Object.fromEntries(fs.readdirSync(folder).sort().map((f) => [f, crypto.createHash('sha256').update(fs.readFileSync(path.join(folder, f))).digest('hex')]));
}

beforeAll(async () => {
  fs.rmSync(dir, { recursive: true, force: true });
  await resetState(c);
  await acts.acquireDrainLease({ owner: 'export-test' });
  await seedCatalogue(c.pool, size);
  await drainAll();
  await runTraffic(c.pool, { rate: 0, changes: 3000, connections: 4, seed: 31, size });
  await drainAll();
  for (;;) if (!(await acts.landChanges()).more) break;
  // A crash after landing but before the landing cursor moved lands the range again (here in
  // other chunk sizes, so the files differ and the changes are in the landing twice).
  await rewindCursor(c.pool, 'landing');
  for (;;) if (!(await landChanges(c.pool, dir, 1500)).more) break;
  duck = await openDuck('256MB');
}, 120_000);
afterAll(async () => {
  duck?.close();
  await c.close();
});

describe('nightly export', () => {
  it('runs as a workflow and writes every change of the day exactly once', async () => {
    const worker = await startWorker(c, address, bundlePath, taskQueue);
    const temporal = await temporalClient(address);
    try {
      const r = await temporal.client.workflow.execute(exportWorkflow, { taskQueue, workflowId: `export-${today}-test`, args: [{ date: today }] });
      const { rows: [{ n }] } = await c.pool.query(`select count(*)::int as n from pipeline.outbox where to_char(created_at at time zone 'UTC', 'YYYY-MM-DD') = $1`, [today]);
      expect(r.changes).toBe(n);
    } finally {
      await worker.stop();
      await temporal.close();
    }
    const landed = await rows(`select count(*) as n from read_parquet(${sqlString(path.join(dir, 'landing', `day=${today}`, '*.parquet'))})`);
    const exported = await rows(`select count(*) as n, count(distinct (txid, id)) as d, count(applied_ts) as applied, min(freshness_ms) as f from read_parquet(${file('changes.parquet')})`);
    expect(Number(landed[0].n)).toBeGreaterThan(Number(exported[0].n)); // the landing holds duplicates…
    expect(exported[0].n).toBe(exported[0].d); // …the export each change once
    expect(exported[0].applied).toBe(exported[0].n); // and when it reached Redis
    expect(Number(exported[0].f)).toBeGreaterThanOrEqual(0);
    // Hive partitioning: readable by date across partitions
    const hive = await rows(`select distinct date::varchar as date from read_parquet(${sqlString(path.join(dir, 'date=*', 'changes.parquet'))}, hive_partitioning = true)`);
    expect(hive).toEqual([{ date: today }]);
  });

  it('feature history intervals are contiguous and non-overlapping per key, clipped to the day', async () => {
    for (const [name, key] of [
      ['sku_fc_history.parquet', 'sku, fc'],
      ['sku_lifecycle_history.parquet', 'sku'],
      ['fc_capacity_history.parquet', 'fc'],
      ['fc_load_history.parquet', 'fc'],
      ['region_fc_history.parquet', 'region, fc'],
    ]) {
      const gaps = await rows(`
        with h as (select ${key}, valid_from, valid_to, lead(valid_from) over (partition by ${key} order by valid_from) as next from read_parquet(${file(name)}))
        select count(*) filter (where next is not null and next <> valid_to) as gaps,
               count(*) filter (where valid_to <= valid_from) as empty,
               count(*) filter (where next is null and valid_to <> (date '${today}' + interval 1 day)) as open_end,
               count(*) as n from h`);
      expect(gaps[0], name).toMatchObject({ gaps: 0n, empty: 0n, open_end: 0n });
      expect(Number(gaps[0].n), name).toBeGreaterThan(0);
    }
    // The last interval of each (SKU, FC) holds the value the source has now.
    const { rows: inv } = await c.pool.query(`select sku_id, fc_id, on_hand - reserved as a from shop.inventory`);
    const last = await rows(`select sku, fc, available from read_parquet(${file('sku_fc_history.parquet')}) qualify row_number() over (partition by sku, fc order by valid_from desc) = 1`);
    const lastMap = new Map(last.map((r) => [`${r.sku}|${r.fc}`, Number(r.available)]));
    for (const r of inv) expect(lastMap.get(`${r.sku_id}|${r.fc_id}`)).toBe(r.a);
  });

  it('the end-of-day badge snapshot equals the online answers', async () => {
    const reader = createBadgeReader({ redis: c.redis, prefix: c.keys.prefix, staleAfterMs: 60_000 });
    const exported = await rows(`select region, sku, eligible, fc, reason from read_parquet(${file('badges.parquet')}) order by region, sku`);
    expect(exported.length).toBe(size.skus * size.regions);
    for (let r = 0; r < size.regions; r++) {
      const mine = exported.filter((b) => b.region === regionId(r));
      for (let i = 0; i < mine.length; i += 200) {
        const part = mine.slice(i, i + 200);
        const online = await reader.getBadges(regionId(r), part.map((b) => String(b.sku)));
        expect(part.map((b) => ({ sku: b.sku, eligible: b.eligible, fc: b.fc, reason: b.reason }))).toEqual(online.badges);
      }
    }
  });

  it('a re-run replaces the partition with identical files', async () => {
    const before = digest(partitionDir(dir, today));
    await acts.exportDay({ date: today });
    expect(digest(partitionDir(dir, today))).toEqual(before);
  });

  it('a killed export leaves the previous good partition, never a partial one', async () => {
    const before = digest(partitionDir(dir, today));
    const staging = path.join(dir, '.staging');
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/export-day.ts', '--date', today, '--dir', dir], { cwd: path.resolve(__dirname, '..', '..'), stdio: 'ignore' });
    await eventually(async () => fs.existsSync(staging) && fs.readdirSync(staging).some((d) => d.startsWith(`date=${today}.`) && fs.readdirSync(path.join(staging, d)).some((f) => f.endsWith('.parquet'))), 30_000, 'the export to be writing');
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    // It died mid-way: its staging folder is still there…
    expect(fs.readdirSync(staging).some((d) => d.startsWith(`date=${today}.`))).toBe(true);
    // …and the partition readers see is the previous one, whole.
    expect(digest(partitionDir(dir, today))).toEqual(before);
    const visible = fs.readdirSync(dir).filter((d) => d.startsWith('date='));
    expect(visible).toEqual([`date=${today}`]); // leftovers sit in .staging, outside the date=* glob
  });
});
