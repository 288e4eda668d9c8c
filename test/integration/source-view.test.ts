/**
 * What a verify's second pass treats as "changed since the view" (reconcile/source-view.ts): the
 * outbox rows of transactions still in progress when the view's snapshot was taken and of those
 * that began after it, never a row the snapshot saw, with a write transaction held open from
 * before the view to after it (it pins the snapshot's xmin, as an idle-in-transaction client does).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { withTriggerView } from '../../reconcile/source-view';
import { resetState, testClients } from '../support/env';
import { seedMinimal } from '../support/source';

const c = testClients();
afterAll(() => c.close());

describe('the rows changed after a view', () => {
  it('are those of transactions in progress at the view and after it, not those it saw', async () => {
    await resetState(c);
    await seedMinimal(c.pool);
    await c.pool.query(`insert into shop.fulfillment_centers values ('F9', 'R9', 1, now())`);
    const pinning = await c.pool.connect();
    const inProgress = await c.pool.connect();
    try {
      // open from before the view to after it: the snapshot's xmin stays at its transaction
      await pinning.query('begin');
      await pinning.query(`update shop.fulfillment_centers set daily_capacity = 2 where fc_id = 'F9'`);
      // in progress at the view, below its xmax (one that began after it committed before the view):
      // in the snapshot's list of running transactions
      await inProgress.query('begin');
      await inProgress.query(`update shop.skus set title = 'in progress' where sku_id = 'S2'`);
      await c.pool.query(`update shop.skus set title = 'seen' where sku_id = 'S1'`); // committed before the view

      const changed = await withTriggerView(c.pool, c.pool, async (view) => {
        await inProgress.query('commit'); // in progress when the view was taken
        await c.pool.query(`update shop.fulfillment_centers set daily_capacity = 3 where fc_id = 'F1'`); // after it
        return view.changedRows();
      });
      const rows = changed.map((r) => `${r.tbl} ${r.key}`).sort();
      expect(rows).toEqual(['fulfillment_centers F1', 'skus S2']);
      await pinning.query('commit');
    } finally {
      pinning.release();
      inProgress.release();
    }
  });
});
