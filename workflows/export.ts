/**
 * Landing (schedule `fresh-badges-landing`, every minute): lands the changes the drain applied
 * as Parquet, catching up in several calls when behind; then prunes the landing days past
 * LANDING_RETENTION_D whose partitions are complete, and dead exports' staging folders
 * (activities/export/landing-retention.ts). Both run on the batch task queue, so on the worker
 * whose EXPORT_DIR holds the files.
 * Export (schedule `fresh-badges-export`, 02:00 UTC): exports the previous UTC day (or `date`),
 * after landing everything applied so far, replacing that date's partition atomically.
 * Runs `landing-<time>` and `export-<date>` in the Web UI; the CLI runs `ops export --date`.
 */
import { ApplicationFailure, log, patched, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { LandingRetention } from '../activities/export/landing-retention';
import { WORKFLOW_INPUT_DEFAULTS } from '../config/defaults';
import { CONFIGURATION_ERROR_TYPE } from '../config/error-types';
import { exportDayActivity, landingAndExportActivity, landingPruneActivity } from './activity-options';

const acts = proxyActivities<Activities>(landingAndExportActivity);
const { exportDay } = proxyActivities<Activities>(exportDayActivity);
const { pruneLanding } = proxyActivities<Activities>(landingPruneActivity);

/** Lands in calls of LANDING_MAX_ROWS until caught up (or maxCalls). */
async function landUntilCaughtUp(maxCalls: number): Promise<{ rows: number; files: number }> {
  let rows = 0;
  let files = 0;
  for (let i = 0; i < maxCalls; i++) {
    const r = await acts.landChanges();
    rows += r.rows;
    files += r.files.length;
    if (!r.more) break;
  }
  return { rows, files };
}

export interface LandingRunResult {
  rows: number;
  files: number;
  /** The landing days pruned and those kept past the retention, the staging folders pruned. */
  retention?: LandingRetention & { staging: string[] };
}

export async function landingWorkflow(input: { maxCalls?: number } = {}): Promise<LandingRunResult> {
  const landed = await landUntilCaughtUp(input.maxCalls ?? WORKFLOW_INPUT_DEFAULTS.landingMaxCalls);
  // Runs begun by code that did not prune (test/histories/landing-before-prune.json) end here.
  if (!patched('landing-prunes')) return landed;
  return { ...landed, retention: await pruneLanding() };
}

/**
 * `date` absent: the nightly run, for the previous UTC day. A day with nothing landed fails when it
 * was asked for by name (unless `allowEmpty`: a partition carrying the previous end state); the
 * nightly run instead succeeds without writing a partition and says so (its result's `skipped`,
 * and a warning in the worker's log), so a quiet day is not a failure that retries forever. The
 * next day's export continues from the last partition before it (activities/export/day-inputs.ts).
 */
export async function exportWorkflow(input: { date?: string; allowEmpty?: boolean } = {}) {
  const date = input.date ?? new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date))
    throw ApplicationFailure.nonRetryable(`not a date: ${date} (YYYY-MM-DD)`, CONFIGURATION_ERROR_TYPE);
  // Everything the drain applied so far is landed first, so the day is complete.
  await landUntilCaughtUp(1000);
  const ifEmpty = input.allowEmpty ? 'write' : input.date === undefined ? 'skip' : 'fail';
  const r = await exportDay({ date, ifEmpty });
  if (r.skipped) log.warn(`export ${date}: nothing to export`, { date, reason: r.skipped });
  return r;
}
