/** Small helpers that write to the shop schema the way the services do. */
import type pg from 'pg';
import { RoutedPool } from './routed-pool';

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
      'select o.id::text as id, o.txid::text as txid, o.tbl, o.op, o.key, o.image, o.old_image from pipeline.outbox o order by o.txid, o.id',
    )
  ).rows;
}

/**
 * What a drain of an older version left after a TRUNCATE of shop.inventory: the TRUNCATE as a
 * dead letter (not applied), the truncated stock still in the store. The TRUNCATE itself is kept
 * out of the outbox: with the trigger capture its trigger is disabled for it; in the logical run
 * (a routed pool) the inventory source's publication stops publishing TRUNCATE for it, so the WAL
 * holds it and the capture skips it.
 */
export async function leaveTruncateDeadLetter(pool: pg.Pool): Promise<void> {
  if (pool instanceof RoutedPool) {
    // In one transaction: the stream judges the TRUNCATE by the catalog of its time (not
    // published), and no capture session's check sees the publication without it. The next tick's
    // publication fingerprint differs (capture/slot.ts), so the write that carries it marks the
    // source for a refill too, as it would any change of the publication.
    const c = await pool.inventory.connect();
    try {
      await c.query('begin');
      await c.query(`alter publication fresh_badges set (publish = 'insert, update, delete')`);
      await c.query(`truncate shop.inventory`);
      await c.query(`alter publication fresh_badges set (publish = 'insert, update, delete, truncate')`);
      await c.query('commit');
    } finally {
      c.release();
    }
  } else {
    await pool.query(`alter table shop.inventory disable trigger capture_truncate`);
    await pool.query(`truncate shop.inventory`);
    await pool.query(`alter table shop.inventory enable trigger capture_truncate`);
  }
  // (the message names a shop table: a routed pool is told where the statement goes)
  await (pool instanceof RoutedPool ? pool.pipeline : pool).query(
    `insert into pipeline.dead_letters (consumer, outbox_txid, outbox_id, tbl, op, key, image, error)
     values ('redis-online-store', pg_current_xact_id(), 999999, 'inventory', 'T', '', null, 'TRUNCATE of shop.inventory was captured')`,
  );
}
