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
