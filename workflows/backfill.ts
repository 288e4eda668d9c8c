/**
 * Full backfill of the online store from the source, table by table in key-range chunks, paced
 * to `rowsPerSecond`, then the FC loads, then the epoch that marks the store complete (reads go
 * fresh again once the drain confirms it is caught up). Started by the CLI (`backfill-<time>`),
 * from the Web UI, or by the drain when it finds the store has lost its data (`backfill-auto`).
 * Progress: the `progress` query (the CLI shows it as a bar) and each chunk's result in history.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  continueAsNew,
  defineQuery,
  log,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import { CONFIG_DEFAULTS } from '../config/defaults';
import { backfillActivity } from './activity-options';
import { count, duration, progress } from './run-details';

const { backfillPlan, backfillChunk, backfillLoads, finishBackfill } = proxyActivities<Activities>(backfillActivity);

const TABLES = ['fulfillment_centers', 'region_fc', 'skus', 'inventory'] as const;

export interface BackfillProgress {
  table: string;
  tableIndex: number;
  rows: number;
  estimatedRows: number;
  done: boolean;
}

export interface BackfillInput {
  reason?: string;
  chunkRows?: number;
  /** Rate limit on source rows read per second (0: unlimited). */
  rowsPerSecond?: number;
  /** Carried across continue-as-new. */
  state?: {
    tableIndex: number;
    after: string[] | null;
    rows: number;
    estimatedRows: number;
    marker?: string;
    /** Steps (chunks, then the loads) whose writes the store has confirmed (BackfillWritesLost). */
    steps?: number;
  };
}

export const backfillProgressQuery = defineQuery<BackfillProgress>('progress');

export async function backfillWorkflow(input: BackfillInput = {}): Promise<{ rows: number; counters: number }> {
  const chunkRows = input.chunkRows ?? CONFIG_DEFAULTS.BACKFILL_CHUNK_ROWS;
  const rate = input.rowsPerSecond ?? CONFIG_DEFAULTS.BACKFILL_ROWS_PER_S;
  // This backfill's id in every store partition: a partition rebuilt meanwhile loses it, and is
  // not marked complete at the end (activities/backfill/backfill.ts, finishBackfill).
  const marker = `${workflowInfo().workflowId}/${workflowInfo().runId}`;
  // Steps are counted by runs started by this code (a run of older code, replayed, counts none).
  const state = input.state ?? {
    tableIndex: 0,
    after: null,
    rows: 0,
    estimatedRows: 0,
    marker,
    ...(patched('backfill-step-count') ? { steps: 0 } : {}),
  };
  if (!input.state) {
    const plan = await backfillPlan({ marker });
    state.estimatedRows = Object.values(plan).reduce((a, b) => a + b, 0);
  }
  let done = false;
  const runStart: RunStart = { atMs: Date.now(), rows: state.rows };
  setHandler(backfillProgressQuery, () => ({
    table: TABLES[Math.min(state.tableIndex, TABLES.length - 1)],
    tableIndex: state.tableIndex,
    rows: state.rows,
    estimatedRows: state.estimatedRows,
    done,
  }));

  while (state.tableIndex < TABLES.length) {
    const started = Date.now();
    const r = await unlessWritesLost(input, () =>
      backfillChunk({ table: TABLES[state.tableIndex], after: state.after, limit: chunkRows, ...nextStep(state) }),
    );
    if (state.steps !== undefined) state.steps += 1;
    state.rows += r.rows;
    if (r.last === null) {
      state.tableIndex += 1;
      state.after = null;
    } else {
      state.after = r.last;
    }
    setCurrentDetails(backfillDetails(state, runStart));
    if (rate > 0) {
      const due = (r.rows / rate) * 1000 - (Date.now() - started);
      if (due > 0) await sleep(due);
    }
    if (workflowInfo().continueAsNewSuggested) await continueAsNew<typeof backfillWorkflow>({ ...input, state });
  }
  setCurrentDetails(`recomputing today's FC loads · ${progress(state.rows, state.estimatedRows, 'source rows read')}`);
  const loads = await unlessWritesLost(input, () => backfillLoads(nextStep(state)));
  if (state.steps !== undefined) state.steps += 1;
  await finishBackfill({
    epoch: `${workflowInfo().workflowId}@${new Date(Date.now()).toISOString()}`,
    marker: state.marker,
    ...(state.steps !== undefined ? { steps: state.steps } : {}),
  });
  done = true;
  setCurrentDetails(
    `done · ${count(state.rows)} source rows, ${count(loads.counters)} FC load counters; the store is complete`,
  );
  return { rows: state.rows, counters: loads.counters };
}

/** The next step's number, for the store to record after its writes (runs of older code count none). */
function nextStep(state: NonNullable<BackfillInput['state']>): { marker?: string; step?: number } {
  return state.steps !== undefined && state.marker ? { marker: state.marker, step: state.steps + 1 } : {};
}

/**
 * Runs a step; when the store lost the writes of earlier ones (Redis came back from an older
 * state: activities/backfill/backfill.ts, BackfillWritesLost), the backfill starts again from the
 * first table, with a new marker (this run's id), instead of marking an incomplete store complete.
 */
async function unlessWritesLost<T>(input: BackfillInput, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (
      err instanceof ActivityFailure &&
      err.cause instanceof ApplicationFailure &&
      err.cause.type === 'BackfillWritesLost'
    ) {
      log.warn('the store lost writes of this backfill; starting it again', { error: err.cause.message });
      await continueAsNew<typeof backfillWorkflow>({ ...input, state: undefined });
    }
    throw err;
  }
}

/** This run's rate, from where it started (a continued run starts its own count). */
interface RunStart {
  atMs: number;
  rows: number;
}

/** The Web UI's current details of a backfill: table, rows against the estimate, rate, ETA. */
function backfillDetails(state: NonNullable<BackfillInput['state']>, start: RunStart): string {
  const table = TABLES[Math.min(state.tableIndex, TABLES.length - 1)];
  const elapsed = Date.now() - start.atMs;
  const perS = elapsed > 0 ? ((state.rows - start.rows) * 1000) / elapsed : 0;
  const left = state.estimatedRows - state.rows;
  const eta = perS > 0 && left > 0 ? ` · about ${duration((left / perS) * 1000)} left` : '';
  return `table ${table} (${Math.min(state.tableIndex + 1, TABLES.length)} of ${TABLES.length}) · ${progress(state.rows, state.estimatedRows, 'source rows')} · ${count(perS)} rows/s${eta}`;
}
