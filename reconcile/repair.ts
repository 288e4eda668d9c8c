/**
 * Repairs what a verify found, through the same paths the pipeline always uses, never by writing
 * the store directly (a direct write could race the drain and lose a newer change):
 *   lifecycle, available, capacity, rank: the source rows are re-emitted through the outbox
 *     (activities/repair/reemit-rows.ts); a row the store has and the source does not is
 *     re-emitted as a delete. The drain applies them in order with every other change.
 *   load: a sum cannot be re-emitted row by row; the counters are recomputed whole under the
 *     drain's lock, as a backfill does.
 *   badge: derived from the features above; counted and logged, repaired through them.
 */
import type pg from 'pg';
import { reemitSourceRows, SourceRowRef } from '../activities/repair/reemit-rows';
import type { VerifyMismatch } from './verify';

export interface RepairPlan {
  rows: SourceRowRef[];
  loads: boolean;
}

const TABLE_OF: Record<string, SourceRowRef['tbl'] | undefined> = {
  lifecycle: 'skus',
  available: 'inventory',
  capacity: 'fulfillment_centers',
  rank: 'region_fc',
};

export function planRepairs(mismatches: VerifyMismatch[]): RepairPlan {
  const rows = new Map<string, SourceRowRef>();
  let loads = false;
  for (const m of mismatches) {
    const tbl = TABLE_OF[m.feature];
    if (tbl) rows.set(`${tbl} ${m.key}`, { tbl, key: m.key });
    else if (m.feature === 'load') loads = true;
  }
  return { rows: [...rows.values()], loads };
}

/** Re-emits the planned rows (deletes for rows the source no longer has); returns how many. */
export async function reemitPlanned(
  primary: pg.Pool,
  plan: RepairPlan,
): Promise<{ refreshed: number; deleted: number }> {
  if (plan.rows.length === 0) return { refreshed: 0, deleted: 0 };
  return reemitSourceRows(primary, plan.rows, { deleteAbsent: true });
}
