/**
 * Repairs what a verify found, through the same paths the pipeline always uses, never by writing
 * the store directly (a direct write could race the drain and lose a newer change):
 *   lifecycle, available, capacity, rank: the source rows are re-read into the outbox by the
 *     capture mode's reader (capture/source-rows.ts); a row the store has and the source does not
 *     is written as a delete. The drain applies them in order with every other change.
 *   load: a sum cannot be re-emitted row by row; the counters are recomputed whole under the
 *     drain's lock, as a backfill does.
 *   badge: derived from the features above; counted and logged, repaired through them.
 */
import type { SourceRowRef } from '../activities/repair/reemit-rows';
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
