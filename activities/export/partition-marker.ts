/**
 * A partition's own note of how it was written: `_partition.json` in its folder, beside the
 * Parquet files. `complete` says whether the day was over when it was exported: only then is
 * state.parquet the state at the next midnight, which the next day continues from
 * (day-inputs.ts, previousStateFile). A partition of a day still running (an export of today)
 * holds the state at its cut-off, the day's latest change landed so far.
 *
 * The leading underscore keeps it out of dataset readers that take the whole folder (Spark,
 * pyarrow skip `_` and `.` files); it is written into the staging folder with the rest, so a
 * partition is never seen without it (export-day.ts, publishPartition).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fsyncPath } from './duckdb';

export const PARTITION_MARKER = '_partition.json';

export interface PartitionMarker {
  date: string;
  /** Written after the day was over: state.parquet is its end state at midnight. */
  complete: boolean;
  /** Where the open intervals end (ISO): the next midnight, or for a partial day its cut-off. */
  intervalsEnd: string;
  /**
   * The day's landing files the export read, by name (absent in a marker of a version before it):
   * a file not among them landed after the export read the day (landing-retention.ts).
   */
  landingFiles?: string[];
}

/** Writes the marker into `folder` (a staging folder), flushed like the Parquet files beside it. */
export function writePartitionMarker(folder: string, marker: PartitionMarker): void {
  const file = path.join(folder, PARTITION_MARKER);
  // Nothing that varies between runs (no time written): a re-run over the same landing writes the same bytes.
  fs.writeFileSync(file, `${JSON.stringify(marker)}\n`);
  fsyncPath(file);
  fsyncPath(folder);
}

/** The marker of a partition folder; null when it has none (written before partitions had one). */
export function readPartitionMarker(folder: string): PartitionMarker | null {
  const file = path.join(folder, PARTITION_MARKER);
  if (!fs.existsSync(file)) return null;
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as PartitionMarker;
  } catch (err) {
    throw new Error(`${file} cannot be read: ${(err as Error).message}`, { cause: err });
  }
}
