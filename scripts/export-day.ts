/**
 * `npm run export-day -- --date YYYY-MM-DD`: the export of one day without Temporal (offline
 * tooling, and what the kill test interrupts). Normally the schedule or `ops export` runs it.
 * A day with nothing landed exits 1 with what to check, writing nothing, unless --allow-empty.
 */
import path from 'node:path';
import { Command } from 'commander';
import { loadConfig } from '../config';
import { exportDay } from '../activities/export/export-day';
import { landedThrough } from '../activities/export/landing';
import { readPartitionMarker } from '../activities/export/partition-marker';
import { createPool } from '../db/pool';
import { dateArg } from './lib/cli-args';

async function main(): Promise<void> {
  const config = loadConfig();
  const o = new Command()
    .name('npm run export-day --')
    .requiredOption('--date <YYYY-MM-DD>', 'the UTC day', dateArg)
    .option('--dir <path>', 'export directory', config.EXPORT_DIR)
    .option(
      '--allow-empty',
      'write a partition even when nothing landed for the day (the previous end state carried over)',
    )
    .parse()
    .opts<{ date: string; dir: string; allowEmpty?: boolean }>();
  const t0 = Date.now();
  const landedThroughMs = await landedThroughOrNull(config.DATABASE_URL);
  const r = await exportDay(path.resolve(o.dir), o.date, {
    memoryLimit: config.EXPORT_MEMORY_LIMIT,
    onProgress: (s) => console.log(`export ${o.date}: ${s}`),
    ifEmpty: o.allowEmpty ? 'write' : 'fail',
    landingRetentionDays: config.LANDING_RETENTION_D,
    landedThroughMs,
  });
  console.log(
    `exported ${r.date}: ${r.changes} changes, ${r.badges} badges in ${((Date.now() - t0) / 1000).toFixed(1)} s -> ${r.dir}`,
  );
  if (r.dir && !readPartitionMarker(r.dir)?.complete)
    console.log(
      `export ${o.date}: partial (the day is not over, or the landing has not yet landed through its end${landedThroughMs === null ? ': the pipeline database could not tell' : ''}): the next day's export will not start from it; export it again once landed through the day`,
    );
}

/** Until when the landing holds every committed change; null when the pipeline database cannot tell. */
async function landedThroughOrNull(url: string): Promise<number | null> {
  const pool = createPool(url, 1);
  try {
    return await landedThrough(pool);
  } catch {
    return null;
  } finally {
    await pool.end();
  }
}

main().catch((err) => {
  console.error(`export-day: ${err.message}`);
  process.exit(1);
});
