/**
 * Rebuilds one SKU's rows in the online store by re-emitting its current source rows through the
 * outbox as refresh (R) changes; the drain applies them like any other change.
 *
 * Why through the outbox, and why this is exact: the rows are read with FOR SHARE and inserted
 * into the outbox in the same statement. A writer that changed a row before we locked it has
 * committed, so we read its value and our outbox id comes after its id; a writer that wants the
 * row after us waits for our commit, so its id comes after ours. Per row, the versions therefore
 * stay in true change order and the store's version check does the rest: a refresh never
 * overwrites a newer change, and a newer change always overwrites the refresh.
 *
 * Load on the OLTP primary: one primary-key range read of the SKU's inventory rows (a handful)
 * and its skus row. It cannot come from a replica: the ordering argument needs the row locks and
 * the outbox ids of the primary. Keeping every discontinued SKU's stock in the pipeline's own
 * state instead would cost memory for every SKU ever discontinued, which is what the tombstone
 * TTL exists to avoid.
 */
import type pg from 'pg';

export async function refreshSkuFromSource(pool: pg.Pool, sku: string): Promise<{ rows: number }> {
  // pipeline.refresh_sku (migration 007): the two FOR SHARE reads and outbox inserts, as a SECURITY
  // DEFINER function, since FOR SHARE needs UPDATE on the table and the worker's role has none.
  const r = await pool.query('select pipeline.refresh_sku($1)::int as n', [sku]);
  return { rows: r.rows[0].n };
}
