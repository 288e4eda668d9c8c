/**
 * The nightly export of one UTC day, from the landing area (never the OLTP), through the same
 * feature definitions as the online path (features/from-source.ts, features/badge-rule.ts).
 * Writes, Hive-partitioned by date, {EXPORT_DIR}/date=YYYY-MM-DD/:
 *   changes.parquet                 every change of the day once: position, table, op, key, images,
 *                                   source_ts (written at the source), applied_ts (in Redis), freshness_ms
 *   sku_lifecycle_history.parquet   validity intervals [valid_from, valid_to) per SKU
 *   sku_fc_history.parquet          … of available units per (SKU, FC)
 *   fc_capacity_history.parquet     … of daily capacity per FC
 *   fc_load_history.parquet         … of the day's load per FC (the day's order deltas in stream
 *                                   order, restarted by a load set: activities/export/load-history.ts;
 *                                   those that landed on earlier days from midnight: earlier-loads.ts)
 *   region_fc_history.parquet       … of rank per (region, FC)
 *   badges.parquet                  the end-of-day badge per (SKU, region), by the one badge rule
 *   state.parquet                   every feature's value at the end of the day (the next day starts
 *                                   from it), the day's load per FC included
 *   _partition.json                 whether the day was over when written (complete) or not (partial:
 *                                   the next day refuses to start from it): partition-marker.ts
 * Intervals are clipped to the day, contiguous and non-overlapping per key; a NULL value means
 * the source row did not exist in that interval. All times are UTC. For a day not over yet the
 * last interval of each key ends 1 ms after the day's latest landed change, never in the future
 * (the nightly run re-exports the whole day once it is over, replacing the partial partition with
 * a complete one). A day with nothing landed writes no partition (day-inputs.ts): an error, a skip
 * for the nightly run, or with --allow-empty the previous end state carried through the day.
 *
 * Atomic: everything is written into a staging folder first, then the partition folder is swapped
 * in by rename; a crash leaves the previous good partition (or none), never a half-written one. Memory
 * is bounded: DuckDB works under EXPORT_MEMORY_LIMIT (spilling to disk) and TypeScript only ever
 * holds one chunk of changes or one SKU at a time.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { decideBadge, rankRegionFcs, RegionFc } from '../../features/badge-rule';
import { FeatureUpdate, Lifecycle } from '../../features/definitions';
import { isTruncate } from '../../capture/source-tables';
import { featureUpdatesFrom, MalformedChange } from '../../features/from-source';
import { LANDING_COLUMNS } from './landing';
import {
  dayIsOver,
  dayStart,
  landingDir,
  hasLandedChanges,
  intervalsEnd,
  nothingLandedMessage,
  NothingLandedError,
  partitionDir,
  previousStateFile,
  validateDate,
} from './day-inputs';
import { copyToParquet, fsyncPath, openDuck, sqlString } from './duckdb';
import { writeLoadHistory } from './load-history';
import { loadEarlierLoadChanges } from './earlier-loads';
import { readPartitionMarker, writePartitionMarker } from './partition-marker';

export { partitionDir, validateDate };

/**
 * A day with nothing landed: `fail` (NothingLandedError, no partition), `skip` (no partition, a
 * result saying so: the nightly run on a quiet day) or `write` (a partition anyway: --allow-empty).
 */
export type IfEmpty = 'fail' | 'skip' | 'write';

export interface ExportResult {
  date: string;
  changes: number;
  skuRows: number;
  badges: number;
  /** The partition folder; null when nothing was written (a skipped quiet day). */
  dir: string | null;
  /** Where the open intervals end (ISO): midnight after the day, or for a day not over yet its latest change + 1 ms. */
  intervalsEnd: string | null;
  /** Why no partition was written. */
  skipped?: string;
}

async function count(conn: DuckDBConnection, sql: string): Promise<number> {
  const r = await conn.runAndReadAll(sql);
  return Number(r.getRows()[0][0]);
}

export async function exportDay(
  exportDir: string,
  date: string,
  opts: {
    memoryLimit?: string;
    onProgress?: (what: string) => void;
    ifEmpty?: IfEmpty;
    now?: number;
    /** LANDING_RETENTION_D: how far back a day without landing files can be told quiet. */
    landingRetentionDays?: number;
    /**
     * Until when the landing holds every committed change (landing.ts, landedThrough; null: not
     * known). The partition is complete only when the day is over and landed through its end: a
     * day exported while the drain or landing was behind misses its late changes. Unset: the day
     * being over is taken as enough (tests that land by hand).
     */
    landedThroughMs?: number | null;
  } = {},
): Promise<ExportResult> {
  validateDate(date);
  if (!hasLandedChanges(exportDir, date) && opts.ifEmpty === 'write') refuseEmptyOverComplete(exportDir, date);
  if (!hasLandedChanges(exportDir, date) && (opts.ifEmpty ?? 'fail') !== 'write') {
    const message = nothingLandedMessage(exportDir, date);
    if (opts.ifEmpty === 'skip')
      return { date, changes: 0, skuRows: 0, badges: 0, dir: null, intervalsEnd: null, skipped: message };
    throw new NothingLandedError(message);
  }
  const staging = path.join(exportDir, '.staging', `date=${date}.${process.pid}.${Date.now()}`);
  fs.mkdirSync(path.join(staging, 'tmp'), { recursive: true });
  // A database file in the staging folder: the day's tables can outgrow the memory limit.
  const duck = await openDuck(opts.memoryLimit ?? '1GB', path.join(staging, 'tmp', 'export.duckdb'));
  const d0 = dayStart(date);
  const run: ExportRun = {
    ...duck,
    exportDir,
    date,
    staging,
    d0,
    end: d0 + 86_400_000, // until the day's changes are read (below)
    yyyymmdd: date.replace(/-/g, ''),
    progress: opts.onProgress ?? (() => undefined),
    oldestKeptDay:
      opts.landingRetentionDays === undefined
        ? null
        : new Date((opts.now ?? Date.now()) - opts.landingRetentionDays * 86_400_000).toISOString().slice(0, 10),
  };
  let result: Omit<ExportResult, 'dir'>;
  try {
    result = await writeDay(run, opts.now ?? Date.now(), opts.landedThroughMs);
  } catch (err) {
    duck.close();
    fs.rmSync(staging, { recursive: true, force: true });
    throw err;
  }
  duck.close();
  fs.rmSync(path.join(staging, 'tmp'), { recursive: true, force: true });
  return { ...result, dir: publishPartition(exportDir, date, staging) };
}

/**
 * `--allow-empty` over a complete partition of a day whose landing files are gone (retention
 * removes them only from complete days): the day was not quiet, it was exported and pruned, and
 * an empty export would replace its partition with the day before's state. Refused.
 */
function refuseEmptyOverComplete(exportDir: string, date: string): void {
  const marker = fs.existsSync(partitionDir(exportDir, date))
    ? readPartitionMarker(partitionDir(exportDir, date))
    : null;
  if (marker?.complete !== true) return;
  if (marker.landingFiles === undefined)
    throw new NothingLandedError(
      `${date} has a complete partition, written by a version that did not record its landing files, and no landing files (removed by the landing retention after its export, unless the day was quiet): exported again with --allow-empty it would be replaced by an empty day. Nothing was written; the partition stays. If the day was quiet, remove its folder (${partitionDir(exportDir, date)}) and export it again with --allow-empty`,
    );
  if (marker.landingFiles.length > 0)
    throw new NothingLandedError(
      `${date} has a complete partition and no landing files (removed by the landing retention after its export): exported again with --allow-empty it would be replaced by an empty day. Nothing was written; the partition stays`,
    );
}

/** Every file of the partition, into the staging folder. */
async function writeDay(
  run: ExportRun,
  now: number,
  landedThroughMs: number | null | undefined,
): Promise<Omit<ExportResult, 'dir'>> {
  await run.conn.run(
    `set temp_directory = ${sqlString(path.join(run.staging, 'tmp'))}; set preserve_insertion_order = false`,
  );
  const { changes, landingFiles } = await loadChanges(run);
  const latest = (await run.conn.runAndReadAll('select max(source_ms) from changes')).getRows()[0][0];
  run.end = intervalsEnd(run.d0, now, latest === null ? null : Number(latest));
  await deriveFeatureUpdates(run, changes);
  const carried = await loadEarlierLoadChanges(run.conn, run.exportDir, run.date);
  if (carried) {
    run.progress(`${carried} changes of earlier days that may count on this day's load`);
    await deriveFeatureUpdates(run, carried, 'carried', (u) => ofLoadOf(run.yyyymmdd, u));
  }
  await writeHistories(run);
  await writeLoadHistory(run.conn, run.staging, { d0: run.d0, d1: run.end, yyyymmdd: run.yyyymmdd });
  const skuRows = await writeEndState(run);
  const badges = await writeBadges(run);
  const end = new Date(run.end).toISOString();
  const landed = landedThroughMs === undefined || (landedThroughMs !== null && landedThroughMs >= run.d0 + 86_400_000);
  writePartitionMarker(run.staging, {
    date: run.date,
    complete: dayIsOver(run.d0, now) && landed,
    intervalsEnd: end,
    landingFiles,
  });
  return { date: run.date, changes, skuRows, badges, intervalsEnd: end };
}

/** One export's DuckDB connections, folders and day bounds (ms since epoch, UTC). */
interface ExportRun {
  conn: DuckDBConnection;
  writer: DuckDBConnection;
  exportDir: string;
  date: string;
  staging: string;
  d0: number;
  /** Where the open intervals end: midnight after the day, or for a day not over yet its latest change + 1 ms (day-inputs.ts). */
  end: number;
  yyyymmdd: string;
  progress: (what: string) => void;
  /** Landing days before this one may have been pruned (day-inputs.ts, previousStateFile). */
  oldestKeptDay: string | null;
}

/**
 * 1. The day's changes, each once (a crash can land a range twice); written as changes.parquet.
 * Read from the landing files listed first, by name, and those names returned: the partition's
 * marker records them, so a file landed while the export ran (after this read, before the marker)
 * is told apart from the ones it holds (landing-retention.ts).
 */
async function loadChanges({
  conn,
  exportDir,
  date,
  staging,
  progress,
}: ExportRun): Promise<{ changes: number; landingFiles: string[] }> {
  const landing = landingDir(exportDir, date);
  const landingFiles = hasLandedChanges(exportDir, date)
    ? fs
        .readdirSync(landing)
        .filter((f) => f.endsWith('.parquet'))
        .sort()
    : [];
  await conn.run(`create table changes (${LANDING_COLUMNS})`);
  if (landingFiles.length) {
    const files = landingFiles.map((f) => sqlString(path.join(landing, f))).join(', ');
    await conn.run(`insert into changes select * from read_parquet([${files}], hive_partitioning = false)`);
    // Keep each change once; the window runs over narrow columns only (not the images).
    await conn.run(`delete from changes where rowid in (
      select rowid from (select rowid, row_number() over (partition by txid, id order by applied_ms nulls last, rowid) as n from changes) where n > 1)`);
  }
  const changes = await count(conn, 'select count(*) from changes');
  progress(`${changes} changes`);
  await copyToParquet(
    conn,
    `select txid, id, tbl, op, key, image, old_image, epoch_ms(source_ms) as source_ts, epoch_ms(applied_ms) as applied_ts,
            applied_ms - source_ms as freshness_ms from changes order by txid, id`,
    path.join(staging, 'changes.parquet'),
  );
  return { changes, landingFiles };
}

/**
 * What of an update that landed on an earlier day counts on day `yyyymmdd`'s load: its deltas and
 * sets of the day, and every refill's completeness, also the one a set of another day carries (the
 * store applied it to the day's counters it then held; load-history.ts folds it from its first day).
 */
function ofLoadOf(yyyymmdd: string, u: FeatureUpdate): FeatureUpdate[] {
  if (u.feature === 'fc.loadsComplete') return [u];
  if (u.feature !== 'fc.load' && u.feature !== 'fc.loadSet') return [];
  if (u.day === yyyymmdd) return [u];
  if (u.feature === 'fc.loadSet' && u.completeFrom !== undefined)
    return [{ feature: 'fc.loadsComplete', from: u.completeFrom, txid: u.txid, id: u.id }];
  return [];
}

/**
 * 2. Feature updates, by the same definitions as the online path, streamed chunk by chunk: of the
 * day's changes, and then of its load changes that landed on earlier days (earlier-loads.ts),
 * whose updates other than this day's load are left out (`select`: ofLoadOf).
 */
async function deriveFeatureUpdates(
  { conn, writer, progress }: ExportRun,
  changes: number,
  from: 'changes' | 'carried' = 'changes',
  select: (u: FeatureUpdate) => FeatureUpdate[] = (u) => [u],
): Promise<void> {
  await conn.run(
    `create table if not exists updates (feature varchar, k1 varchar, k2 varchar, num bigint, code varchar, version bigint, ptxid ubigint, ts_ms bigint)`,
  );
  const ap = await writer.createAppender('updates');
  const stream = await conn.stream(
    `select id, txid, tbl, op, key, image::varchar, old_image::varchar, source_ms from ${from} order by txid, id`,
  );
  let malformed = 0;
  let streamed = 0;
  for (;;) {
    const chunk = await stream.fetchChunk();
    if (!chunk || chunk.rowCount === 0) break;
    streamed += chunk.rowCount;
    // a heartbeat per chunk: a big day takes longer than the activity's heartbeat timeout
    progress(`feature updates: ${streamed} of ${changes} changes`);
    for (const [id, txid, tbl, op, key, image, oldImage, sourceMs] of chunk.getRows()) {
      // no rows of its own: it closes what its table held (truncateUpdates); one of a table outside
      // the contract is malformed, as in the drain, and skipped below
      if (isTruncate({ op: String(op), tbl: String(tbl) })) continue;
      let updates;
      try {
        updates = featureUpdatesFrom({
          id: String(id),
          txid: String(txid),
          tbl: String(tbl),
          op: String(op),
          key: String(key),
          image: image === null ? null : JSON.parse(String(image)),
          old_image: oldImage === null ? null : JSON.parse(String(oldImage)),
          created_ms: Number(sourceMs),
        });
      } catch (err) {
        if (err instanceof MalformedChange) {
          malformed++;
          continue;
        }
        throw err;
      }
      for (const u of updates.flatMap(select)) {
        for (const row of updateRows(u, BigInt(Number(sourceMs)))) {
          ap.appendVarchar(row[0]);
          ap.appendVarchar(row[1]);
          if (row[2] === null) ap.appendNull();
          else ap.appendVarchar(row[2]);
          if (row[3] === null) ap.appendNull();
          else ap.appendBigInt(BigInt(row[3]));
          if (row[4] === null) ap.appendNull();
          else ap.appendVarchar(row[4]);
          ap.appendBigInt(row[5]);
          ap.appendUBigInt(row[6]);
          ap.appendBigInt(row[7]);
          ap.endRow();
        }
      }
    }
  }
  ap.flushSync();
  ap.closeSync();
  if (streamed !== changes) throw new Error(`export: read ${streamed} of ${changes} changes (stream ended early)`);
  progress(`feature updates derived${malformed ? ` (${malformed} malformed changes skipped)` : ''}`);
}

/**
 * 3. Validity intervals: the previous day's end state opens the day, each change starts a new
 * interval, the end of the day (or, for a day not over yet, its latest change) closes the last.
 */
async function writeHistories(run: ExportRun): Promise<void> {
  const { conn, exportDir, date, staging, d0, end, oldestKeptDay } = run;
  const prevState = previousStateFile(exportDir, date, oldestKeptDay);
  if (prevState) await conn.run(`create table prev_state as select * from read_parquet(${sqlString(prevState)})`);
  else
    await conn.run(
      `create table prev_state (feature varchar, k1 varchar, k2 varchar, num bigint, code varchar, version bigint)`,
    );
  await truncateUpdates(run);
  // The load is not carried over: a day's load counts that day's orders only (load-history.ts).
  await conn.run(`create table ev as
    select feature, k1, k2, num, code, version, ${d0}::bigint as ts_ms from prev_state where feature <> 'fc.load'
    union all
    select feature, k1, k2, num, code, version, greatest(ts_ms, ${d0}) from updates where feature not in ('fc.load', 'fc.loadSet', 'fc.loadsComplete')`);
  await conn.run(`create table iv as
    select feature, k1, k2, num, code, version, ts_ms as from_ms,
           coalesce(lead(ts_ms) over (partition by feature, k1, k2 order by version), ${end}) as to_ms
      from ev`);
  const history = (feature: string, cols: string, order: string) =>
    `select ${cols}, epoch_ms(from_ms) as valid_from, epoch_ms(to_ms) as valid_to, version
       from iv where feature = '${feature}' and to_ms > from_ms order by ${order}, from_ms`;
  const histories: [feature: string, columns: string, order: string, file: string][] = [
    ['sku.lifecycle', 'k1 as sku, code as lifecycle', 'k1', 'sku_lifecycle_history.parquet'],
    ['sku.available', 'k1 as sku, k2 as fc, num as available', 'k1, k2', 'sku_fc_history.parquet'],
    ['fc.capacity', 'k1 as fc, num as daily_capacity', 'k1', 'fc_capacity_history.parquet'],
    ['region.rank', 'k1 as region, k2 as fc, num as rank', 'k1, k2', 'region_fc_history.parquet'],
  ];
  for (const [feature, columns, order, file] of histories) {
    await copyToParquet(conn, history(feature, columns, order), path.join(staging, file));
  }
}

/** The feature a TRUNCATE of each table (but orders) empties. */
const TRUNCATED_FEATURE: Record<string, string> = {
  skus: 'sku.lifecycle',
  inventory: 'sku.available',
  fulfillment_centers: 'fc.capacity',
  region_fc: 'region.rank',
};

/**
 * A captured TRUNCATE, as the store takes it (it is emptied and refilled from the source): at the
 * TRUNCATE's place in the stream, every key its table held a value for so far (the previous day's
 * end state, the day's changes before it) has none; for orders, every FC's load of the day is 0
 * (a load set). Feature updates of their own, so the intervals, the end state and the badges
 * follow. (Placed by outbox id, as the intervals are ordered; the load fold goes by (txid, id), so
 * under the trigger capture an order whose transaction began before the TRUNCATE and wrote after
 * it may fall on the wrong side of the 0: the store refills from the source there instead.)
 */
async function truncateUpdates({ conn, yyyymmdd }: ExportRun): Promise<void> {
  const truncates = (
    await conn.runAndReadAll(`select tbl, id, txid, source_ms from changes where op = 'T' order by id`)
  ).getRows();
  // one at a time, in order: a key a TRUNCATE ended is not ended again by the next one
  for (const [tbl, id, txid, sourceMs] of truncates) {
    // one of a table outside the contract is malformed (isTruncate), skipped with the day's other
    // malformed changes; 'constructor' or 'toString' would even find a feature below
    if (!isTruncate({ op: 'T', tbl: String(tbl) })) continue;
    const at = `${Number(id)}, ${String(txid)}::ubigint, ${Number(sourceMs)}`;
    const feature = TRUNCATED_FEATURE[String(tbl)];
    if (feature)
      await conn.run(`insert into updates
        select feature, k1, k2, null, null, ${at} from (
          select feature, k1, k2, arg_max(num is not null or code is not null, version) as live
            from (select feature, k1, k2, num, code, -1::bigint as version from prev_state where feature = ${sqlString(feature)}
                  union all
                  select feature, k1, k2, num, code, version from updates
                   where feature = ${sqlString(feature)} and version < ${Number(id)})
           group by feature, k1, k2)
         where live`);
    else if (tbl === 'orders')
      // (code 'truncate': not a refill's set, which a completeness of the same transaction spares: load-history.ts)
      await conn.run(`insert into updates
        select 'fc.loadSet', fc, ${sqlString(yyyymmdd)}, 0, 'truncate', ${at}
          from (select k1 as fc from prev_state where feature = 'fc.capacity'
                union select k1 from updates where feature = 'fc.capacity'
                union select k1 from updates where feature in ('fc.load', 'fc.loadSet') and k2 = ${sqlString(yyyymmdd)})`);
  }
}

/** 4. End-of-day state (what the next day starts from); returns the SKU·FC rows in it. */
async function writeEndState({ conn, staging, yyyymmdd }: ExportRun): Promise<number> {
  await conn.run(`create table state as
    select feature, k1, k2, num, code, version from ev
     qualify row_number() over (partition by feature, k1, k2 order by version desc) = 1`);
  // The day's load at its end, as the badges take it: the last step of the fold in stream order.
  await conn.run(`insert into state select 'fc.load', fc, ${sqlString(yyyymmdd)}, load, null, version from load_end`);
  await copyToParquet(
    conn,
    `select * from state where num is not null or code is not null order by feature, k1, k2`,
    path.join(staging, 'state.parquet'),
  );
  return count(conn, `select count(*) from state where feature = 'sku.available' and num is not null`);
}

/** 5. End-of-day badges by the one rule, one SKU at a time; returns how many. */
async function writeBadges({ conn, writer, staging, progress }: ExportRun): Promise<number> {
  let badges = 0;
  const capacity = new Map<string, number>();
  for (const [fc, num] of (
    await conn.runAndReadAll(`select k1, num from state where feature = 'fc.capacity' and num is not null`)
  ).getRows())
    capacity.set(String(fc), Number(num));
  const load = new Map<string, number>();
  for (const [fc, l] of (await conn.runAndReadAll(`select k1, num from state where feature = 'fc.load'`)).getRows())
    load.set(String(fc), Number(l));
  const regions = new Map<string, RegionFc[]>();
  for (const [region, fc, rank] of (
    await conn.runAndReadAll(
      `select k1, k2, num from state where feature = 'region.rank' and num is not null order by k1, k2`,
    )
  ).getRows()) {
    const list = regions.get(String(region)) ?? regions.set(String(region), []).get(String(region))!;
    list.push({
      fc: String(fc),
      rank: Number(rank),
      capacity: capacity.get(String(fc)) ?? null,
      load: load.get(String(fc)) ?? 0,
    });
  }
  const ranked = [...regions.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([r, fcs]) => [r, rankRegionFcs(fcs)] as const);
  await conn.run(`create table badges (region varchar, sku varchar, eligible boolean, fc varchar, reason varchar)`);
  const bap = await writer.createAppender('badges');
  const skus = await conn.stream(`
    select k1 as sku, max(code) filter (where feature = 'sku.lifecycle') as lifecycle,
           list(k2 order by k2) filter (where feature = 'sku.available' and num is not null) as fcs,
           list(num order by k2) filter (where feature = 'sku.available' and num is not null) as avail
      from state where feature in ('sku.lifecycle', 'sku.available') group by k1
    having max(code) filter (where feature = 'sku.lifecycle') is not null order by k1`);
  for (;;) {
    const chunk = await skus.fetchChunk();
    if (!chunk || chunk.rowCount === 0) break;
    progress(`end-of-day badges: ${badges} so far`);
    for (const [sku, lifecycle, fcs, avail] of chunk.getRows()) {
      const stock = new Map<string, number>();
      const fcList = (fcs as { items?: unknown[] } | null)?.items ?? [];
      const availList = (avail as { items?: unknown[] } | null)?.items ?? [];
      fcList.forEach((fc, i) => stock.set(String(fc), Number(availList[i])));
      for (const [region, fcsOfRegion] of ranked) {
        const b = decideBadge(
          String(sku),
          { lifecycle: lifecycle as Lifecycle, available: (fc) => stock.get(fc) },
          fcsOfRegion,
        );
        bap.appendVarchar(region);
        bap.appendVarchar(b.sku);
        bap.appendBoolean(b.eligible);
        if (b.fc === null) bap.appendNull();
        else bap.appendVarchar(b.fc);
        bap.appendVarchar(b.reason);
        bap.endRow();
        badges++;
      }
    }
  }
  bap.flushSync();
  bap.closeSync();
  const catalogue = await count(
    conn,
    `select count(distinct k1) from state where feature = 'sku.lifecycle' and code is not null`,
  );
  if (badges !== catalogue * ranked.length)
    throw new Error(`export: ${badges} badges for ${catalogue} SKUs x ${ranked.length} regions (stream ended early)`);
  await copyToParquet(
    conn,
    `select region, sku, eligible, fc, reason from badges order by region, sku`,
    path.join(staging, 'badges.parquet'),
  );
  progress(`${badges} end-of-day badges`);
  return badges;
}

/** 6. Swap the partition in: at every instant there is the old complete partition, or none, or the new one. */
/** How long an export may run (its activity's 4-hour limit, with room): older staging folders are a dead attempt's. */
export const STAGING_ABANDONED_MS = 5 * 3_600_000;

/**
 * Removes what exports that died left in the staging folder (`date=…` of an unfinished attempt,
 * with its DuckDB file and spill; `old-date=…` of a swap cut short), once older than any export
 * may run: the time is in each name. Returns the names removed. (The landing run calls it, on the
 * batch task queue: activities/export/index.ts, pruneLanding.)
 */
export function pruneStaging(exportDir: string, now = Date.now()): string[] {
  const dir = path.join(exportDir, '.staging');
  if (!fs.existsSync(dir)) return [];
  const removed: string[] = [];
  for (const name of fs.readdirSync(dir)) {
    const m = /^(?:old-)?date=\d{4}-\d{2}-\d{2}\.\d+\.(\d+)$/.exec(name);
    if (!m || now - Number(m[1]) < STAGING_ABANDONED_MS) continue;
    fs.rmSync(path.join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

function publishPartition(exportDir: string, date: string, staging: string): string {
  const target = partitionDir(exportDir, date);
  const trash = path.join(exportDir, '.staging', `old-date=${date}.${process.pid}.${Date.now()}`);
  if (fs.existsSync(target)) fs.renameSync(target, trash);
  fs.renameSync(staging, target);
  fsyncPath(path.dirname(target)); // the swap on disk before the trash goes (its files were flushed when written)
  fs.rmSync(trash, { recursive: true, force: true });
  return target;
}

type UpdateRow = [
  feature: string,
  k1: string,
  k2: string | null,
  num: number | null,
  code: string | null,
  version: bigint,
  txid: bigint,
  tsMs: bigint,
];

/**
 * A feature update as rows of the `updates` table: keys, numeric or coded value, version. A
 * refill's completeness is a row `fc.loadsComplete` (k1 '', k2 its first day), after its last set.
 */
function updateRows(u: FeatureUpdate, tsMs: bigint): UpdateRow[] {
  switch (u.feature) {
    case 'sku.lifecycle':
      return [[u.feature, u.sku, null, null, u.value, BigInt(u.version), BigInt(u.txid), tsMs]];
    case 'sku.available':
      return [[u.feature, u.sku, u.fc, u.value, null, BigInt(u.version), BigInt(u.txid), tsMs]];
    case 'fc.capacity':
      return [[u.feature, u.fc, null, u.value, null, BigInt(u.version), BigInt(u.txid), tsMs]];
    case 'region.rank':
      return [[u.feature, u.region, u.fc, u.value, null, BigInt(u.version), BigInt(u.txid), tsMs]];
    case 'fc.load':
      return [[u.feature, u.fc, u.day, u.delta, null, BigInt(u.id), BigInt(u.txid), tsMs]];
    case 'fc.loadSet': {
      const set: UpdateRow = [u.feature, u.fc, u.day, u.value, null, BigInt(u.id), BigInt(u.txid), tsMs];
      if (u.completeFrom === undefined) return [set];
      return [set, ['fc.loadsComplete', '', u.completeFrom, null, null, BigInt(u.id), BigInt(u.txid), tsMs]];
    }
    case 'fc.loadsComplete':
      return [[u.feature, '', u.from, null, null, BigInt(u.id), BigInt(u.txid), tsMs]];
  }
}
