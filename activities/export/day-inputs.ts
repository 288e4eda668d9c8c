/**
 * What the export of one UTC day starts from, before any DuckDB work: the day's bounds, whether
 * anything landed for it (without landed changes the export stops with a message saying what to
 * check, rather than publish an empty partition that looks like a quiet day), the end state of the
 * day it continues (past quiet days the nightly run skipped, never a partial day's), and where the
 * day's open intervals end (midnight, or for a day not over yet the latest change landed, never a
 * future instant).
 */
import fs from 'node:fs';
import path from 'node:path';
import { readPartitionMarker } from './partition-marker';

/** Where the landing consumer writes a day's Parquet files (activities/export/landing.ts). */
export const landingDir = (exportDir: string, day: string) => path.join(exportDir, 'landing', `day=${day}`);

export const partitionDir = (exportDir: string, date: string) => path.join(exportDir, `date=${date}`);

export const dayStart = (date: string) => Date.parse(`${date}T00:00:00Z`);
export const shiftDay = (date: string, days: number) =>
  new Date(dayStart(date) + days * 86_400_000).toISOString().slice(0, 10);

export function validateDate(date: string): string {
  if (
    !/^\d{4}-\d{2}-\d{2}$/.test(date) ||
    Number.isNaN(dayStart(date)) ||
    new Date(dayStart(date)).toISOString().slice(0, 10) !== date
  ) {
    throw new Error(`not a date: ${JSON.stringify(date)} (expected YYYY-MM-DD)`);
  }
  return date;
}

/** The export of a day nothing landed for. Its name is the Temporal failure type the activity reports. */
export class NothingLandedError extends Error {
  override name = 'NothingLanded';
}

/** Landing files hold at least one change each (landing.ts writes none for an empty range). */
export function hasLandedChanges(exportDir: string, date: string): boolean {
  const dir = landingDir(exportDir, date);
  return fs.existsSync(dir) && fs.readdirSync(dir).some((f) => f.endsWith('.parquet'));
}

/** Why there is nothing to export, and what to look at. */
export function nothingLandedMessage(exportDir: string, date: string): string {
  return (
    `no changes landed for ${date}: ${landingDir(exportDir, date)} holds no Parquet files, so no partition was written. ` +
    `Check that EXPORT_DIR is the one the batch worker lands into, that the landing schedule (fresh-badges-landing) ` +
    `is running and the drain applies changes (npm run ops -- status), and that the day is within LANDING_RETENTION_D. ` +
    `To write a partition for a day with no changes anyway (the previous day's end state carried over): --allow-empty`
  );
}

/**
 * The end state the day continues: the latest earlier partition's state.parquet, when every day
 * between had nothing landed (quiet days the nightly run skipped, with nothing to carry over);
 * null when there is no earlier partition (history starts at the first exported day). A day in
 * between that landed changes but has no partition stops the export: starting from an older state
 * would carry wrong values into every interval of the day. So does a latest partition written
 * while its day was running (partition-marker.ts): its state is the one at its cut-off, and the
 * rest of that day's changes would be missing from every interval of this one. A partition
 * without a marker (written before partitions had one) is taken as complete: the code that wrote
 * it could not tell, and its nightly run normally replaced a partial one.
 */
export function previousStateFile(
  exportDir: string,
  date: string,
  /** The oldest day whose landing files are kept whatever its export (LANDING_RETENTION_D): before it, a day with none may have been pruned, not quiet. */
  oldestKeptDay: string | null = null,
): string | null {
  const earlier = fs.existsSync(exportDir)
    ? fs
        .readdirSync(exportDir)
        .map((d) => /^date=(\d{4}-\d{2}-\d{2})$/.exec(d)?.[1])
        .filter((d): d is string => d !== undefined && d < date)
        .filter((d) => fs.existsSync(path.join(partitionDir(exportDir, d), 'state.parquet')))
        .sort()
    : [];
  const latest = earlier[earlier.length - 1];
  if (latest === undefined) return null;
  const marker = readPartitionMarker(partitionDir(exportDir, latest));
  if (marker?.complete === false)
    throw new Error(
      `${latest}'s partition was written before the day was over or landed through its end (partial: its end state may not be the one at midnight; its intervals end at ${marker.intervalsEnd}): export it again once the landing has caught up past its end (npm run ops -- export --date ${latest}); ${date} starts from its end state`,
    );
  for (let day = shiftDay(latest, 1); day < date; day = shiftDay(day, 1)) {
    if (oldestKeptDay !== null && day < oldestKeptDay)
      throw new Error(
        `${date} would continue from ${latest}'s end state, but whether ${day} was quiet cannot be told: its landing files are past LANDING_RETENTION_D and may have been pruned. Export the days in between first, oldest first (npm run ops -- export --date ${day}; a day that was quiet has nothing landed and is exported with --allow-empty, which carries ${latest}'s end state over it), or start the history again from ${date} by moving the older partitions away`,
      );
    if (hasLandedChanges(exportDir, day))
      throw new Error(
        `${day} has landed changes but no export partition: export it first (npm run export-day -- --date ${day}); ${date} starts from its end state`,
      );
  }
  return path.join(partitionDir(exportDir, latest), 'state.parquet');
}

/**
 * Where the day's open intervals end: midnight after the day once it is over; for a day still
 * running at `now`, 1 ms after its latest landed change (or `now` when there is none) (so that change's own interval is not
 * empty). A training row's timestamp after that is not covered by the partition: the values are
 * not known yet. Taken from the data, not the clock, so a re-run over the same landed changes
 * writes the same files.
 */
export function intervalsEnd(d0: number, now: number, latestChangeMs: number | null): number {
  const d1 = d0 + 86_400_000;
  if (dayIsOver(d0, now)) return d1;
  // (no change at all, only with --allow-empty: the day so far)
  return Math.min(d1, Math.max(d0, latestChangeMs === null ? now : latestChangeMs + 1));
}

/**
 * Whether the day starting at `d0` is over at `now`: its partition is then complete (its end
 * state the one at midnight), else partial. Not told from the intervals' end: a source clock
 * ahead of this one can put a running day's cut-off at midnight.
 */
export function dayIsOver(d0: number, now: number): boolean {
  return now >= d0 + 86_400_000;
}
