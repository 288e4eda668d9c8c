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
  const client = await pool.connect();
  try {
    await client.query('begin');
    const skus = await client.query(
      `insert into pipeline.outbox (tbl, op, key, image)
       select 'skus', 'R', s.sku_id, to_json(s) from (select * from shop.skus where sku_id = $1 for share) s`,
      [sku],
    );
    const inventory = await client.query(
      `insert into pipeline.outbox (tbl, op, key, image)
       select 'inventory', 'R', i.sku_id || '|' || i.fc_id, to_json(i)
         from (select * from shop.inventory where sku_id = $1 order by fc_id for share) i`,
      [sku],
    );
    await client.query('commit');
    return { rows: (skus.rowCount ?? 0) + (inventory.rowCount ?? 0) };
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
