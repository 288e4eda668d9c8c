/** Small helpers that write to the shop schema the way the services do. */
import type pg from 'pg';

export async function seedMinimal(pool: pg.Pool): Promise<void> {
  await pool.query(`insert into shop.fulfillment_centers values ('F1', 'R1', 100, now()), ('F2', 'R1', 50, now())`);
  await pool.query(`insert into shop.region_fc values ('R1', 'F1', 1), ('R1', 'F2', 2)`);
  await pool.query(
    `insert into shop.skus (sku_id, title, lifecycle) values ('S1', 'one', 'active'), ('S2', 'two', 'active')`,
  );
  await pool.query(
    `insert into shop.inventory values ('S1', 'F1', 10, 0, now()), ('S1', 'F2', 4, 1, now()), ('S2', 'F2', 0, 0, now())`,
  );
}

export async function outboxRows(
  pool: pg.Pool,
): Promise<{ id: string; txid: string; tbl: string; op: string; key: string; image: any; old_image: any }[]> {
  return (
    await pool.query(
      'select id::text, txid::text, tbl, op, key, image, old_image from pipeline.outbox order by txid, id',
    )
  ).rows;
}

/**
 * What a drain of an older version left after a TRUNCATE of shop.inventory: the TRUNCATE as a
 * dead letter (not applied), the truncated stock still in the store.
 */
export async function leaveTruncateDeadLetter(pool: pg.Pool): Promise<void> {
  await pool.query(`alter table shop.inventory disable trigger capture_truncate`);
  await pool.query(`truncate shop.inventory`);
  await pool.query(`alter table shop.inventory enable trigger capture_truncate`);
  await pool.query(
    `insert into pipeline.dead_letters (consumer, outbox_txid, outbox_id, tbl, op, key, image, error)
     values ('redis-online-store', pg_current_xact_id(), 999999, 'inventory', 'T', '', null, 'TRUNCATE of shop.inventory was captured')`,
  );
}
