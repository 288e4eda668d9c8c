/**
 * Full backfill of the online store from the source, table by table in key-range chunks, paced
 * to `rowsPerSecond`, then the FC loads, then the epoch that marks the store complete (reads go
 * fresh again once the drain confirms it is caught up). Started by the CLI (`backfill-<time>`),
 * from the Web UI, or by the drain when it finds the store has lost its data (`backfill-auto`).
 * Progress: the `progress` query (the CLI shows it as a bar) and each chunk's result in history.
 */
import { continueAsNew, defineQuery, proxyActivities, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { CONFIG_DEFAULTS } from '../config/defaults';
import { backfillActivity } from './activity-options';

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
  state?: { tableIndex: number; after: string[] | null; rows: number; estimatedRows: number; marker?: string };
}

export const backfillProgressQuery = defineQuery<BackfillProgress>('progress');

export async function backfillWorkflow(input: BackfillInput = {}): Promise<{ rows: number; counters: number }> {
  const chunkRows = input.chunkRows ?? CONFIG_DEFAULTS.BACKFILL_CHUNK_ROWS;
  const rate = input.rowsPerSecond ?? CONFIG_DEFAULTS.BACKFILL_ROWS_PER_S;
  // This backfill's id in every store partition: a partition rebuilt meanwhile loses it, and is
  // not marked complete at the end (activities/backfill/backfill.ts, finishBackfill).
  const marker = `${workflowInfo().workflowId}/${workflowInfo().runId}`;
  const state = input.state ?? { tableIndex: 0, after: null, rows: 0, estimatedRows: 0, marker };
  if (!input.state) {
    const plan = await backfillPlan({ marker });
    state.estimatedRows = Object.values(plan).reduce((a, b) => a + b, 0);
  }
  let done = false;
  setHandler(backfillProgressQuery, () => ({
    table: TABLES[Math.min(state.tableIndex, TABLES.length - 1)],
    tableIndex: state.tableIndex,
    rows: state.rows,
    estimatedRows: state.estimatedRows,
    done,
  }));

  while (state.tableIndex < TABLES.length) {
    const started = Date.now();
    const r = await backfillChunk({ table: TABLES[state.tableIndex], after: state.after, limit: chunkRows });
    state.rows += r.rows;
    if (r.last === null) {
      state.tableIndex += 1;
      state.after = null;
    } else {
      state.after = r.last;
    }
    if (rate > 0) {
      const due = (r.rows / rate) * 1000 - (Date.now() - started);
      if (due > 0) await sleep(due);
    }
    if (workflowInfo().continueAsNewSuggested) await continueAsNew<typeof backfillWorkflow>({ ...input, state });
  }
  const loads = await backfillLoads();
  await finishBackfill({
    epoch: `${workflowInfo().workflowId}@${new Date(Date.now()).toISOString()}`,
    marker: state.marker,
  });
  done = true;
  return { rows: state.rows, counters: loads.counters };
}
