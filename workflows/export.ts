/**
 * Landing (schedule `fresh-badges-landing`, every minute): lands the changes the drain applied
 * as Parquet, catching up in several calls when behind.
 * Export (schedule `fresh-badges-export`, 02:00 UTC): exports the previous UTC day (or `date`),
 * after landing everything applied so far, replacing that date's partition atomically.
 * Runs `landing-<time>` and `export-<date>` in the Web UI; the CLI runs `ops export --date`.
 */
import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { WORKFLOW_INPUT_DEFAULTS } from '../config/defaults';
import { CONFIGURATION_ERROR_TYPE } from '../config/error-types';
import { landingAndExportActivity } from './activity-options';

const acts = proxyActivities<Activities>(landingAndExportActivity);

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

export async function landingWorkflow(input: { maxCalls?: number } = {}): Promise<{ rows: number; files: number }> {
  return landUntilCaughtUp(input.maxCalls ?? WORKFLOW_INPUT_DEFAULTS.landingMaxCalls);
}

export async function exportWorkflow(input: { date?: string } = {}) {
  const date = input.date ?? new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date))
    throw ApplicationFailure.nonRetryable(`not a date: ${date} (YYYY-MM-DD)`, CONFIGURATION_ERROR_TYPE);
  // Everything the drain applied so far is landed first, so the day is complete.
  await landUntilCaughtUp(1000);
  return acts.exportDay({ date });
}
