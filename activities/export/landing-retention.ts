/**
 * Which landing days go: a day's folder (EXPORT_DIR/landing/day=YYYY-MM-DD) is the only copy of
 * its changes once the outbox is pruned past them, so it is removed only when both hold:
 *   - it is past LANDING_RETENTION_D (before the same cut-off the export's oldestKeptDay uses), and
 *   - its partition is complete (`_partition.json`, partition-marker.ts): exported after the day
 *     was over and landed through its end, so its training data is in the partition; and nothing
 *     landed in it after that export (a transaction that committed late: in no partition yet);
 *   - the next day's export no longer needs it: that day's partition is complete, or nothing
 *     landed for it. An export reads the earlier days' files for its own load changes written
 *     before its midnight (earlier-loads.ts: orders placed ahead of the pipeline's clock).
 * A day past the retention without a complete partition (never exported, exported while running or
 * while the landing was behind, or by a version that wrote no marker) is kept and reported, with
 * the export that makes it removable. A folder holding no landed changes (no Parquet file: only a
 * crashed write's temporary file) has nothing to export and goes once past the retention.
 *
 * Run by the landing workflow on the batch task queue (activities/export/index.ts), so on the
 * machine whose EXPORT_DIR holds the files.
 */
import fs from 'node:fs';
import path from 'node:path';
import { hasLandedChanges, landingDir, partitionDir, shiftDay } from './day-inputs';
import { PARTITION_MARKER, readPartitionMarker } from './partition-marker';

/** A day past the retention kept because its partition is not complete, and why. */
export interface KeptLandingDay {
  day: string;
  partition:
    'none' | 'partial' | 'no marker' | 'unreadable marker' | 'landed after its export' | 'next day not complete';
}

/** The day an operator exports to make a kept day removable: the day itself, or the next one. */
export const dayToExport = (k: KeptLandingDay) =>
  k.partition === 'next day not complete' ? shiftDay(k.day, 1) : k.day;

export interface LandingRetention {
  /** Days removed: past the retention, their partition complete (or nothing landed in them). */
  removed: string[];
  /** Days past the retention kept: their export is missing or not complete. Oldest first. */
  kept: KeptLandingDay[];
}

/** The oldest day kept regardless of its export: days before it are past LANDING_RETENTION_D. */
export const retentionCutoff = (retentionDays: number, now: number) =>
  new Date(now - retentionDays * 86_400_000).toISOString().slice(0, 10);

/** Removes the landing days past the retention whose partitions are complete; reports the rest. */
export function pruneLandingDays(exportDir: string, retentionDays: number, now = Date.now()): LandingRetention {
  const root = path.join(exportDir, 'landing');
  const result: LandingRetention = { removed: [], kept: [] };
  if (!fs.existsSync(root)) return result;
  const cutoff = retentionCutoff(retentionDays, now);
  const past = fs
    .readdirSync(root)
    .map((name) => /^day=(\d{4}-\d{2}-\d{2})$/.exec(name)?.[1])
    .filter((day): day is string => day !== undefined && day < cutoff)
    .sort();
  for (const day of past) {
    const next = shiftDay(day, 1);
    let partition = hasLandedChanges(exportDir, day) ? partitionState(exportDir, day) : 'complete';
    if (partition === 'complete' && hasLandedChanges(exportDir, next) && partitionState(exportDir, next) !== 'complete')
      partition = 'next day not complete';
    if (partition !== 'complete') {
      result.kept.push({ day, partition });
      continue;
    }
    fs.rmSync(landingDir(exportDir, day), { recursive: true, force: true });
    result.removed.push(day);
  }
  return result;
}

function partitionState(exportDir: string, day: string): KeptLandingDay['partition'] | 'complete' {
  const folder = partitionDir(exportDir, day);
  if (!fs.existsSync(folder)) return 'none';
  try {
    const marker = readPartitionMarker(folder);
    if (marker === null) return 'no marker';
    if (marker.complete !== true) return 'partial';
    const late = Array.isArray(marker.landingFiles)
      ? landedBesides(exportDir, day, new Set(marker.landingFiles))
      : landedSince(exportDir, day, fs.statSync(path.join(folder, PARTITION_MARKER)).mtimeMs);
    return late ? 'landed after its export' : 'complete';
  } catch {
    return 'unreadable marker';
  }
}

/**
 * Whether `day` holds a landing file its export did not read (the marker's list): one landed while
 * the export ran, after it had read the day, is written before the marker yet in no partition.
 */
function landedBesides(exportDir: string, day: string, read: Set<string>): boolean {
  return fs.readdirSync(landingDir(exportDir, day)).some((f) => f.endsWith('.parquet') && !read.has(f));
}

/** Whether a landing file of `day` was written after `ms` (the marker of a version that listed no files). */
function landedSince(exportDir: string, day: string, ms: number): boolean {
  const dir = landingDir(exportDir, day);
  return fs.readdirSync(dir).some((f) => f.endsWith('.parquet') && fs.statSync(path.join(dir, f)).mtimeMs > ms);
}

/** Days the warning names (after a long export outage the list is in the run's result). */
const NAMED_DAYS = 20;

/**
 * The warning for days kept past the retention: which, and what makes them removable. Exported
 * oldest first: each day's export continues from the partition of the day before.
 */
export function keptDaysMessage(kept: KeptLandingDay[], retentionDays: number): string {
  const named = kept
    .slice(0, NAMED_DAYS)
    .map((k) => `${k.day} (${k.partition === 'none' ? 'not exported' : k.partition})`);
  const toExport = [...new Set(kept.map(dayToExport))].sort();
  const days =
    named.join(', ') +
    (kept.length > NAMED_DAYS ? ` and ${kept.length - NAMED_DAYS} more (all in the run's result)` : '');
  return (
    `landing: ${kept.length} day(s) past LANDING_RETENTION_D (${retentionDays} days) kept because their export is not complete, or the next day's export still reads them: ${days}. ` +
    `Their landing files are the only copy of their changes. Export, oldest first: npm run ops -- export --date ${toExport[0]!}` +
    (toExport.length > 1 ? `, then the next ones in turn (… --date ${toExport[toExport.length - 1]!})` : '') +
    ' (a quiet day in between, with nothing landed, is exported with --allow-empty); once complete they are pruned'
  );
}
