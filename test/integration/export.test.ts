/**
 * The landing area and the nightly export, read back with DuckDB: every change once, contiguous
 * non-overlapping intervals, end-of-day badges equal to the online answers, a load set honoured at
 * its place in the stream, identical re-runs, and a killed export leaving no partial partition.
 */
import { rewindCursor } from '../support/cursor';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activitiesFor } from '../support/activities';
import { landChanges, LANDING_COLUMNS } from '../../activities/export/landing';
import { openDuck, sqlString } from '../../activities/export/duckdb';
import { batchTaskQueue, names } from '../../config';
import { runOps } from '../support/ops-cli';
import { advanceCursor, drainAppliedSnapshot, readCursor, readDelta } from '../../outbox';
import { exportDay, partitionDir } from '../../activities/export/export-day';
import { createBadgeReader } from '../../serving/badge-reader';
import { rowsOfChunk } from '../../capture/chunk-rows';
import { withTransaction } from '../../db/transaction';
import { sourceBadges } from '../../reconcile/source-badges';
import { FIELD } from '../../store/names';
import { CatalogueSize, fcId, regionId, seedCatalogue, skuId } from '../../simulator/catalogue';
import { runTraffic } from '../../simulator/traffic';
import { exportWorkflow } from '../../workflows';
import {
  eventually,
  pipelineClients,
  resetState,
  sharedTestServer,
  startWorker,
  temporalClient,
  testClients,
} from '../support/env';

const taskQueue = `export-${process.pid}`;
const c = testClients({ TEMPORAL_TASK_QUEUE: taskQueue, LANDING_MAX_ROWS: '2000' });
const dir = path.resolve(c.config.EXPORT_DIR);
const acts = activitiesFor(pipelineClients(c));
const size: CatalogueSize = { skus: 300, fcs: 6, regions: 3, fcsPerRegion: 2, fcsPerSku: 2 };
const today = new Date().toISOString().slice(0, 10);
const { address, bundlePath } = sharedTestServer();
let duck: Awaited<ReturnType<typeof openDuck>>;
/** The workflow's export of today (the first test). */
let exportedToday: Awaited<ReturnType<typeof acts.exportDay>>;

async function drainAll() {
  for (;;) if ((await acts.drainBatch({ owner: 'export-test' })).outcome !== 'applied') return;
}
/** Everything drained, the landing cursor back at the start, and a landing folder of its own for `fn`. */
async function landingFromTheStart(prefix: string, fn: (out: string) => Promise<void>): Promise<void> {
  await drainAll();
  const out = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  try {
    await rewindCursor(c.pool, names.landingConsumer);
    await fn(out);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}
async function rows(sql: string): Promise<Record<string, unknown>[]> {
  return (await duck.conn.runAndReadAll(sql)).getRowObjects() as Record<string, unknown>[];
}
const file = (name: string) => sqlString(path.join(partitionDir(dir, today), name));
function digest(folder: string): Record<string, string> {
  return Object.fromEntries(
    fs
      .readdirSync(folder)
      .sort()
      .map((f) => [
        f,
        crypto
          .createHash('sha256')
          .update(fs.readFileSync(path.join(folder, f)))
          .digest('hex'),
      ]),
  );
}

/** The day's load of `fc` as the badge rule counts it, from shop.orders. */
async function sourceLoad(fc: string): Promise<number> {
  const { rows } = await c.pool.query(
    `select coalesce(sum(qty), 0)::int as n from shop.orders
      where fc_id = $1 and status in ('placed', 'shipped')
        and placed_at >= $2::timestamp at time zone 'UTC' and placed_at < ($2::timestamp + interval '1 day') at time zone 'UTC'`,
    [fc, today],
  );
  return rows[0].n;
}

/**
 * One FC's day as a refill under capture from the WAL leaves it (docs/capture.md): order deltas,
 * an order the stream never carried (written with the capture triggers off, as changes lost with
 * a slot are), the load set the refill then writes (the day's sum re-read from the source, made
 * by capture/chunk-rows.ts), a load set of yesterday, and more deltas. The lost order brings the
 * FC exactly to its capacity: only the set honoured at its place gives the day's load and badges.
 */
const refill = { fc: fcId(0), region: regionId(0), set: 0, yesterday: '' };
async function refillOneFcDay(): Promise<void> {
  const { fc } = refill;
  // each step a few ms apart, so that each starts an interval of its own
  const order = async (qty: number) => {
    await sleep(5);
    await c.pool.query(`insert into shop.orders (sku_id, fc_id, qty, status) values ($1, $2, $3, 'placed')`, [
      skuId(0),
      fc,
      qty,
    ]);
  };
  const loadSet = async (day: string, load: number) => {
    await sleep(5);
    const chunk = { id: '0', tbl: 'orders', keys: null, deleteAbsent: false, afterKey: day, snapshot: '' };
    const [row] = rowsOfChunk(
      { ...chunk, rows: [{ key: `${fc}|${day}`, image: { fc_id: fc, day, load } }] },
      { excluded: new Set(), unseenOrders: [] },
    )!;
    // one FC's set of a refill, not the whole refill: not the last set, which says the loads are
    // complete (the store and the export would zero every other FC's day: export-load-fold.test.ts)
    const { complete_from: _, ...set } = JSON.parse(row.image!) as Record<string, unknown>;
    await c.pool.query(`insert into pipeline.outbox (tbl, op, key, image) values ($1, $2, $3, $4::jsonb)`, [
      row.tbl,
      row.op,
      row.key,
      JSON.stringify(set),
    ]);
  };
  const { rows } = await c.pool.query(`select daily_capacity from shop.fulfillment_centers where fc_id = $1`, [fc]);
  await order(2);
  await order(1);
  const lost = rows[0].daily_capacity - (await sourceLoad(fc)) - 3; // 3: the deltas after the set
  expect(lost).toBeGreaterThan(0);
  await withTransaction(c.pool, async (client) => {
    await client.query(`set local session_replication_role = replica`);
    await client.query(`insert into shop.orders (sku_id, fc_id, qty, status) values ($1, $2, $3, 'placed')`, [
      skuId(0),
      fc,
      lost,
    ]);
  });
  refill.set = await sourceLoad(fc);
  await loadSet(today.replace(/-/g, ''), refill.set);
  refill.yesterday = new Date(Date.parse(today) - 86_400_000).toISOString().slice(0, 10).replace(/-/g, '');
  await loadSet(refill.yesterday, 99_999);
  await order(1);
  await order(2);
}

beforeAll(async () => {
  fs.rmSync(dir, { recursive: true, force: true });
  await resetState(c);
  await acts.acquireDrainLease({ owner: 'export-test' });
  await seedCatalogue(c.pool, size);
  await drainAll();
  await runTraffic(c.pool, { rate: 0, changes: 3000, connections: 4, seed: 31, size });
  await drainAll();
  await refillOneFcDay();
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
      const r = await temporal.client.workflow.execute(exportWorkflow, {
        taskQueue,
        workflowId: `export-${today}-test`,
        args: [{ date: today }],
      });
      exportedToday = r;
      const {
        rows: [{ n }],
      } = await c.pool.query(
        `select count(*)::int as n from pipeline.outbox where to_char(created_at at time zone 'UTC', 'YYYY-MM-DD') = $1`,
        [today],
      );
      expect(r.changes).toBe(n);
    } finally {
      await worker.stop();
      await temporal.close();
    }
    const landed = await rows(
      `select count(*) as n from read_parquet(${sqlString(path.join(dir, 'landing', `day=${today}`, '*.parquet'))})`,
    );
    const exported = await rows(
      `select count(*) as n, count(distinct (txid, id)) as d, count(applied_ts) as applied, min(freshness_ms) as f from read_parquet(${file('changes.parquet')})`,
    );
    expect(Number(landed[0].n)).toBeGreaterThan(Number(exported[0].n)); // the landing holds duplicates…
    expect(exported[0].n).toBe(exported[0].d); // …the export each change once
    expect(exported[0].applied).toBe(exported[0].n); // and when it reached Redis
    expect(Number(exported[0].f)).toBeGreaterThanOrEqual(0);
    // Hive partitioning: readable by date across partitions
    const hive = await rows(
      `select distinct date::varchar as date from read_parquet(${sqlString(path.join(dir, 'date=*', 'changes.parquet'))}, hive_partitioning = true)`,
    );
    expect(hive).toEqual([{ date: today }]);
  });

  it('feature history intervals are contiguous and non-overlapping per key, clipped to the day', async () => {
    // Today is not over: the open intervals end 1 ms after the latest change landed, not at
    // tomorrow's midnight nor at any other instant still to come.
    const [{ latest }] = await rows(
      `select epoch_ms(max(source_ts)) as latest from read_parquet(${file('changes.parquet')})`,
    );
    const end = Number(latest) + 1;
    expect(exportedToday.intervalsEnd).toBe(new Date(end).toISOString());
    expect(end).toBeLessThanOrEqual(Date.now());
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
               count(*) filter (where next is null and valid_to <> epoch_ms(${end})) as open_end,
               count(*) filter (where valid_to > epoch_ms(${Date.now()})) as future,
               count(*) as n from h`);
      expect(gaps[0], name).toMatchObject({ gaps: 0n, empty: 0n, open_end: 0n, future: 0n });
      expect(Number(gaps[0].n), name).toBeGreaterThan(0);
    }
    // The last interval of each (SKU, FC) holds the value the source has now.
    const { rows: inv } = await c.pool.query(`select sku_id, fc_id, on_hand - reserved as a from shop.inventory`);
    const last = await rows(
      `select sku, fc, available from read_parquet(${file('sku_fc_history.parquet')}) qualify row_number() over (partition by sku, fc order by valid_from desc) = 1`,
    );
    const lastMap = new Map(last.map((r) => [`${r.sku}|${r.fc}`, Number(r.available)]));
    for (const r of inv) expect(lastMap.get(`${r.sku_id}|${r.fc_id}`)).toBe(r.a);
  });

  it('the end-of-day badge snapshot equals the online answers', async () => {
    const reader = createBadgeReader({
      redis: c.redis,
      prefix: c.keys.prefix,
      partitions: c.keys.partitions.length,
      staleAfterMs: 60_000,
    });
    const exported = await rows(
      `select region, sku, eligible, fc, reason from read_parquet(${file('badges.parquet')}) order by region, sku`,
    );
    expect(exported.length).toBe(size.skus * size.regions);
    for (let r = 0; r < size.regions; r++) {
      const mine = exported.filter((b) => b.region === regionId(r));
      for (let i = 0; i < mine.length; i += 200) {
        const part = mine.slice(i, i + 200);
        const online = await reader.getBadges(
          regionId(r),
          part.map((b) => String(b.sku)),
        );
        expect(part.map((b) => ({ sku: b.sku, eligible: b.eligible, fc: b.fc, reason: b.reason }))).toEqual(
          online.badges,
        );
      }
    }
  });

  it('honours a load set: the load restarts at it, later deltas add, and load and badges equal the store and the rule', async () => {
    const { fc, region, set } = refill;
    const day = today.replace(/-/g, '');
    const truth = await sourceLoad(fc);
    expect(Number(await c.redis.hget(c.keys.partitions[0].load(fc, day), FIELD.loadCount))).toBe(truth);
    // the FC's day: the running load, then the set replacing it, then the two deltas after it
    const history = await rows(
      `select load from read_parquet(${file('fc_load_history.parquet')}) where fc = ${sqlString(fc)} order by valid_from`,
    );
    expect(history.slice(-3).map((h) => Number(h.load))).toEqual([set, set + 1, set + 3]);
    expect(Number(history[history.length - 4].load)).toBeLessThan(set); // (the lost order is only in the set)
    expect(set + 3).toBe(truth);
    // the end of the day in state.parquet; no load set in it as a feature of its own
    const state = await rows(
      `select feature, k2, num from read_parquet(${file('state.parquet')}) where feature like 'fc.load%' and k1 = ${sqlString(fc)}`,
    );
    expect(state).toEqual([{ feature: 'fc.load', k2: day, num: BigInt(truth) }]);
    // both sets are changes of the day, as written: op S on orders, the key (FC, day), the load
    const sets = await rows(
      `select tbl, op, key, image->>'load' as load from read_parquet(${file('changes.parquet')}) where op = 'S' order by txid, id`,
    );
    expect(sets).toEqual([
      { tbl: 'orders', op: 'S', key: `${fc}|${day}`, load: String(set) },
      { tbl: 'orders', op: 'S', key: `${fc}|${refill.yesterday}`, load: '99999' },
    ]);
    // The FC is its region's first and at capacity: no badge names it, though some SKU has stock
    // there (by the deltas alone it would be below capacity and named), and the rule by SQL agrees.
    const stocked = await rows(
      `select count(*) as n from read_parquet(${file('state.parquet')}) a join read_parquet(${file('state.parquet')}) l
          on l.feature = 'sku.lifecycle' and l.k1 = a.k1 and l.code = 'active'
       where a.feature = 'sku.available' and a.k2 = ${sqlString(fc)} and a.num > 0`,
    );
    expect(Number(stocked[0].n)).toBeGreaterThan(0);
    const exported = await rows(
      `select sku, eligible, fc, reason from read_parquet(${file('badges.parquet')}) where region = ${sqlString(region)} order by sku`,
    );
    expect(exported.some((b) => b.fc === fc)).toBe(false);
    const bySql = await sourceBadges(
      c.pool,
      region,
      exported.map((b) => String(b.sku)),
    );
    expect(exported).toEqual(bySql);
  });

  it("the training query in docs/training-export.md, run as written, returns every order's features", async () => {
    const doc = fs.readFileSync(path.resolve(__dirname, '../../docs/training-export.md'), 'utf8');
    const query = /<!-- the query below is run as written[^>]*-->\n```sql\n([\s\S]*?)```/.exec(doc)?.[1];
    expect(query, 'the marked sql block').toBeTruthy();
    // Its paths are the default EXPORT_DIR, relative to the project folder: a folder where
    // .data/export is this test's export stands in for it.
    const project = fs.mkdtempSync(path.join(os.tmpdir(), 'training-query-'));
    fs.mkdirSync(path.join(project, '.data'));
    fs.symlinkSync(dir, path.join(project, '.data', 'export'));
    const cwd = process.cwd();
    let result: Record<string, unknown>[];
    try {
      process.chdir(project);
      result = await rows(query!.trim().replace(/;$/, ''));
    } finally {
      process.chdir(cwd);
      fs.rmSync(project, { recursive: true, force: true });
    }
    const [{ orders }] = await rows(
      `select count(*) as orders from read_parquet(${file('changes.parquet')}) where tbl = 'orders' and op = 'I'`,
    );
    expect(Number(orders)).toBeGreaterThan(100);
    expect(result.length).toBe(Number(orders));
    const missing = result.filter((r) => r.available === null || r.daily_capacity === null || r.load === null);
    expect(missing).toEqual([]);
    expect(result.some((r) => Number(r.available) > 0)).toBe(true);
  });

  it('a re-run replaces the partition with identical files', async () => {
    const before = digest(partitionDir(dir, today));
    await acts.exportDay({ date: today });
    expect(digest(partitionDir(dir, today))).toEqual(before);
  });

  it('a killed export leaves the previous good partition, never a partial one', async () => {
    const before = digest(partitionDir(dir, today));
    const staging = path.join(dir, '.staging');
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/export-day.ts', '--date', today, '--dir', dir], {
      cwd: path.resolve(__dirname, '..', '..'),
      stdio: 'ignore',
    });
    await eventually(
      async () =>
        fs.existsSync(staging) &&
        fs
          .readdirSync(staging)
          .some(
            (d) =>
              d.startsWith(`date=${today}.`) &&
              fs.readdirSync(path.join(staging, d)).some((f) => f.endsWith('.parquet')),
          ),
      30_000,
      'the export to be writing',
    );
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    // It died mid-way: its staging folder is still there…
    expect(fs.readdirSync(staging).some((d) => d.startsWith(`date=${today}.`))).toBe(true);
    // …and the partition readers see is the previous one, whole.
    expect(digest(partitionDir(dir, today))).toEqual(before);
    const visible = fs.readdirSync(dir).filter((d) => d.startsWith('date='));
    expect(visible).toEqual([`date=${today}`]); // leftovers sit in .staging, outside the date=* glob
  });

  // A big day takes longer than the activity's heartbeat timeout (5 minutes): the long loops
  // report progress (the activity's heartbeat) as they go, not only between steps.
  it('reports progress inside its long loops', async () => {
    const steps: string[] = [];
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'export-progress-'));
    try {
      fs.cpSync(path.join(dir, 'landing'), path.join(out, 'landing'), { recursive: true });
      await exportDay(out, today, { memoryLimit: '256MB', onProgress: (what) => steps.push(what) });
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
    expect(steps.some((s) => /^feature updates: \d+ of \d+ changes$/.test(s))).toBe(true);
    expect(steps.some((s) => /^end-of-day badges: \d+ so far$/.test(s))).toBe(true);
  });

  // The drain paused or behind at export time: the day's last changes are not landed yet. They
  // would land after the export and be in no partition; the next day would start from an
  // incomplete end state. The export waits (retried) until the landing is past the day's end.
  it('a day that is over is exported only once the landing holds everything committed before its end', async () => {
    const yesterday = new Date(Date.parse(today) - 86_400_000).toISOString().slice(0, 10);
    await drainAll();
    for (;;) if (!(await acts.landChanges()).more) break;
    const through = (await readCursor(c.pool, names.landingConsumer)).fromAt;
    expect(through).toBeGreaterThanOrEqual(Date.parse(`${today}T00:00:00Z`)); // recorded by the landing
    // as if the landing had stopped at yesterday's noon
    await c.pool.query(`update pipeline.consumer_offsets set snap_from_at = $2 where consumer = $1`, [
      names.landingConsumer,
      new Date(`${yesterday}T12:00:00Z`),
    ]);
    await expect(acts.exportDay({ date: yesterday, ifEmpty: 'skip' })).rejects.toMatchObject({
      type: 'LandingBehind',
      nonRetryable: false,
      message: expect.stringContaining(`${yesterday} is not fully landed yet`),
    });
    // caught up again: the export goes on (nothing landed for yesterday here: skipped)
    await c.pool.query(
      `update pipeline.consumer_offsets set snap_from_at = to_timestamp($2::float8 / 1000) where consumer = $1`,
      [names.landingConsumer, through],
    );
    expect(await acts.exportDay({ date: yesterday, ifEmpty: 'skip' })).toMatchObject({ skipped: expect.any(String) });
  });

  it('a landing call reads its delta in chunks: the same cursor as one read, every change landed once', async () => {
    await drainAll();
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'landing-chunks-'));
    const maxRows = c.config.LANDING_MAX_ROWS;
    try {
      // Everything again from the start, in one batch bigger than LANDING_MAX_ROWS.
      await rewindCursor(c.pool, names.landingConsumer);
      const calls: { rows: number; chunk: number; complete: boolean }[] = [];
      for (;;) {
        // What one read of maxRows rows would give: the rows, and the cursor after them.
        const cursor = await readCursor(c.pool, names.landingConsumer);
        const drain = await drainAppliedSnapshot(c.pool);
        const target = cursor.to ?? drain.snap;
        // (the time everything is landed through once the batch is done: the drain snapshot's)
        const targetAt = cursor.to !== null ? cursor.toAt : drain.at;
        const single = await readDelta(c.pool, {
          from: cursor.from,
          to: target,
          after: cursor.position,
          limit: maxRows,
        });
        const expected = advanceCursor(cursor, { snap: target, at: targetAt }, single, maxRows);
        // A few hundred rows per read, so a call spans several chunks; on the call that ends the
        // batch, a chunk size dividing what is left, so its last read comes back empty.
        let chunk = 300;
        if (expected.complete && single.length > 1) {
          const d = [2, 3, 4, 5, 6, 7].find((k) => single.length % k === 0);
          chunk = d ? single.length / d : single.length;
        }
        // The first call also holds its reads to 4,000 rows/s (LANDING_ROWS_PER_S): 2,000 rows
        // in chunks of 300 cannot take less than the 1,800 rows before the last chunk allow.
        const rate = calls.length === 0 ? 4_000 : 0;
        const t0 = Date.now();
        const r = await landChanges(c.pool, out, maxRows, { readChunk: chunk, rowsPerSecond: rate });
        if (rate) expect(Date.now() - t0).toBeGreaterThanOrEqual(((maxRows - chunk) / rate) * 1000 - 5);
        calls.push({ rows: r.rows, chunk, complete: expected.complete });
        expect(r.rows).toBe(single.length);
        expect(await readCursor(c.pool, names.landingConsumer)).toEqual(expected.next);
        if (single.length > 0)
          expect(r.position).toEqual({ txid: single[single.length - 1].txid, id: single[single.length - 1].id });
        if (!r.more) break;
      }
      // The first call was cut by LANDING_MAX_ROWS, in several chunks.
      expect(calls[0]).toMatchObject({ rows: maxRows, complete: false });
      expect(calls[0].rows / calls[0].chunk).toBeGreaterThan(2);
      expect(calls[calls.length - 1].complete).toBe(true);

      const glob = sqlString(path.join(out, 'landing', 'day=*', '*.parquet'));
      const landed = await rows(
        `select txid::varchar as txid, id::varchar as id from read_parquet(${glob}) order by txid::ubigint, id::bigint`,
      );
      // (what every drain shard has applied)
      const { rows: outbox } = await c.pool.query(
        `select o.txid::text as txid, o.id::text as id from pipeline.outbox o
          where pg_visible_in_snapshot(o.txid, $1::pg_snapshot) order by o.txid, o.id`,
        [(await drainAppliedSnapshot(c.pool)).snap],
      );
      expect(outbox.length).toBeGreaterThan(maxRows);
      // Every applied change exactly once across the files: none lost, none twice.
      expect(landed).toEqual(outbox);
      // Each file is named by its first and last row, and has the landing schema.
      const perFile = await rows(`
        select filename, count(*) as n, count(applied_ms) as applied,
               arg_min(txid::varchar || '_' || id::varchar, (txid, id)) as first, arg_max(txid::varchar || '_' || id::varchar, (txid, id)) as last
          from read_parquet(${glob}, filename = true) group by filename`);
      for (const f of perFile) {
        expect(path.basename(String(f.filename))).toMatch(
          new RegExp(`^b\\d+-${f.first}-${f.last}-[0-9a-f]{8}\\.parquet$`),
        );
        expect(f.applied).toBe(f.n);
      }
      const schema = await rows(
        `describe select * from read_parquet(${sqlString(String(perFile[0].filename))}, hive_partitioning = false)`,
      );
      expect(schema.map((s) => `${s.column_name} ${String(s.column_type).toLowerCase()}`).join(', ')).toBe(
        LANDING_COLUMNS,
      );
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });

  it("landing calls from one cursor keep each its own files: neither replaces the other's", async () => {
    await landingFromTheStart('landing-own-files-', async (out) => {
      // the same cursor and limit: the same range, so the same name but for the call
      const [a, b] = await Promise.all([landChanges(c.pool, out, 2000), landChanges(c.pool, out, 2000)]);
      expect(a.rows).toBe(b.rows);
      const dayDir = path.join(out, 'landing', `day=${today}`);
      const files = fs.readdirSync(dayDir);
      expect(files.filter((f) => f.endsWith('.parquet'))).toHaveLength(2);
      expect(files.filter((f) => f.includes('.tmp-'))).toEqual([]);
    });
  });

  // Two landing calls side by side from the same cursor: the one that saves last must not move the
  // cursor back over the other's (only duplicates follow, which the export keeps once).
  it('a landing call run beside another never moves the cursor back', async () => {
    await landingFromTheStart('landing-side-by-side-', async (out) => {
      const cursor = await readCursor(c.pool, names.landingConsumer);
      const drain = await drainAppliedSnapshot(c.pool);
      const target = { snap: drain.snap, at: drain.at };
      const far = await readDelta(c.pool, { from: cursor.from, to: drain.snap, after: cursor.position, limit: 2000 });
      expect(far.length).toBeGreaterThan(300);
      const expected = advanceCursor(cursor, target, far, 2000).next;
      // the short call is held to 600 rows/s: it saves last, half a second after the long one
      const [long, short] = await Promise.all([
        landChanges(c.pool, out, 2000),
        landChanges(c.pool, out, 300, { readChunk: 100, rowsPerSecond: 600 }),
      ]);
      expect(long.rows).toBe(far.length);
      expect(short).toMatchObject({ rows: 300, more: true });
      expect(await readCursor(c.pool, names.landingConsumer)).toEqual(expected);
    });
  });
});

/** `npm run export-day` as a child process: its exit code and what it printed. */
async function exportDayCli(args: string[]): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/export-day.ts', ...args], {
    cwd: path.resolve(__dirname, '..', '..'),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  // 'close': every byte it printed read (at 'exit' the pipes may still hold some)
  const code = await new Promise<number | null>((r) => child.once('close', r));
  return { code, out };
}

describe('a day with nothing landed', () => {
  const quiet = '2001-02-03';

  it('export-day fails, saying what to check, and writes no partition; --allow-empty writes one', async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'export-empty-'));
    try {
      const failed = await exportDayCli(['--date', quiet, '--dir', out]);
      expect(failed.code).toBe(1);
      expect(failed.out).toContain(`no changes landed for ${quiet}`);
      expect(failed.out).toContain('fresh-badges-landing');
      expect(failed.out).toContain('--allow-empty');
      expect(fs.existsSync(partitionDir(out, quiet))).toBe(false);
      expect(fs.readdirSync(out).filter((d) => d.startsWith('date='))).toEqual([]);

      const allowed = await exportDayCli(['--date', quiet, '--dir', out, '--allow-empty']);
      expect(allowed.code, allowed.out).toBe(0);
      expect(allowed.out).toContain(`exported ${quiet}: 0 changes`);
      expect(fs.existsSync(path.join(partitionDir(out, quiet), 'changes.parquet'))).toBe(true);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });

  it('the nightly run succeeds on a quiet day without writing a partition; a day asked for by name fails', async () => {
    const yesterday = new Date(Date.parse(today) - 86_400_000).toISOString().slice(0, 10);
    expect(fs.existsSync(path.join(dir, 'landing', `day=${yesterday}`))).toBe(false);
    const worker = await startWorker(c, address, bundlePath, taskQueue);
    const batchWorker = await startWorker(c, address, bundlePath, batchTaskQueue(c.config)); // ops export's queue
    const temporal = await temporalClient(address);
    try {
      // no date: the nightly run, for yesterday, when nothing landed in this test's export folder
      const r = await temporal.client.workflow.execute(exportWorkflow, {
        taskQueue,
        workflowId: `export-nightly-test-${process.pid}`,
        args: [{}],
      });
      expect(r).toMatchObject({ date: yesterday, changes: 0, dir: null });
      expect(r.skipped).toContain(`no changes landed for ${yesterday}`);
      expect(fs.existsSync(partitionDir(dir, yesterday))).toBe(false);
      // by name: a failure that says why, at once (not retried)
      const named = temporal.client.workflow.execute(exportWorkflow, {
        taskQueue,
        workflowId: `export-${quiet}-test-${process.pid}`,
        args: [{ date: quiet }],
      });
      await expect(named).rejects.toMatchObject({ cause: { cause: { type: 'NothingLanded' } } });
      expect(fs.existsSync(partitionDir(dir, quiet))).toBe(false);
      // and `ops export` says so in those words (not "workflow execution failed"), exit 1
      const ops = await runOps(c.config, address, ['export', '--date', quiet]);
      expect(ops.code).toBe(1);
      expect(ops.stderr).toContain(`no changes landed for ${quiet}`);
    } finally {
      await batchWorker.stop();
      await worker.stop();
      await temporal.close();
    }
  });
});
