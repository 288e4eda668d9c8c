/** The capture triggers: every change on every shop table lands in the outbox, in its transaction. */
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { outboxRows, seedMinimal } from '../support/source';
import { resetState, testClients } from '../support/env';

const c = testClients();
afterAll(() => c.close());
beforeEach(() => resetState(c));

describe('capture triggers', () => {
  it('capture insert, update and delete on every table with key and row image', async () => {
    await seedMinimal(c.pool);
    await c.pool.query(`update shop.skus set lifecycle = 'paused' where sku_id = 'S1'`);
    await c.pool.query(`update shop.fulfillment_centers set daily_capacity = 7 where fc_id = 'F2'`);
    await c.pool.query(`update shop.region_fc set rank = 3 where fc_id = 'F2'`);
    await c.pool.query(`update shop.inventory set on_hand = 11 where sku_id = 'S1' and fc_id = 'F1'`);
    const {
      rows: [o],
    } = await c.pool.query(
      `insert into shop.orders (sku_id, fc_id, qty, status) values ('S1', 'F1', 2, 'placed') returning order_id`,
    );
    await c.pool.query(`update shop.orders set status = 'shipped' where order_id = $1`, [o.order_id]);
    await c.pool.query(`delete from shop.orders`);
    await c.pool.query(`delete from shop.inventory where sku_id = 'S2'`);
    await c.pool.query(`delete from shop.region_fc where fc_id = 'F2'`);
    await c.pool.query(`delete from shop.skus where sku_id = 'S2'`);

    const rows = await outboxRows(c.pool);
    const summary = rows.map((r) => `${r.tbl} ${r.op} ${r.key}`);
    expect(summary).toEqual([
      'fulfillment_centers I F1',
      'fulfillment_centers I F2',
      'region_fc I R1|F1',
      'region_fc I R1|F2',
      'skus I S1',
      'skus I S2',
      'inventory I S1|F1',
      'inventory I S1|F2',
      'inventory I S2|F2',
      'skus U S1',
      'fulfillment_centers U F2',
      'region_fc U R1|F2',
      'inventory U S1|F1',
      `orders I ${o.order_id}`,
      `orders U ${o.order_id}`,
      `orders D ${o.order_id}`,
      'inventory D S2|F2',
      'region_fc D R1|F2',
      'skus D S2',
    ]);
    expect(rows.find((r) => r.tbl === 'inventory' && r.op === 'U')!.image).toMatchObject({
      sku_id: 'S1',
      fc_id: 'F1',
      on_hand: 11,
      reserved: 0,
    });
    const orderUpdate = rows.find((r) => r.tbl === 'orders' && r.op === 'U')!;
    expect(orderUpdate.image.status).toBe('shipped');
    expect(orderUpdate.old_image.status).toBe('placed'); // orders keep the before-image
    expect(rows.find((r) => r.tbl === 'inventory' && r.op === 'U')!.old_image).toBeNull(); // others do not
    expect(rows.find((r) => r.op === 'D' && r.tbl === 'skus')!.image).toMatchObject({ sku_id: 'S2' });
  });

  it('captures a primary-key change as a delete of the old key and an insert of the new one', async () => {
    await seedMinimal(c.pool);
    await c.pool.query(`delete from pipeline.outbox`);
    await c.pool.query(`update shop.region_fc set region = 'R9' where fc_id = 'F1'`);
    const rows = await outboxRows(c.pool);
    expect(rows.map((r) => `${r.tbl} ${r.op} ${r.key}`)).toEqual(['region_fc D R1|F1', 'region_fc I R9|F1']);
    expect(rows[0].txid).toBe(rows[1].txid);
  });

  it('writes nothing when the transaction rolls back, and records TRUNCATE', async () => {
    const client = await c.pool.connect();
    try {
      await client.query('begin');
      await client.query(`insert into shop.skus (sku_id, title, lifecycle) values ('S9', 'x', 'active')`);
      await client.query('rollback');
    } finally {
      client.release();
    }
    expect(await outboxRows(c.pool)).toEqual([]);
    await c.pool.query('truncate shop.orders');
    expect((await outboxRows(c.pool)).map((r) => `${r.tbl} ${r.op}`)).toEqual(['orders T']);
  });
});
