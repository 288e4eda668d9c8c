/**
 * Verify does not report a discontinued SKU whose tombstone expired (issue 11): gone by design;
 * nor a SKU the store answers `unknown` on purpose (its stock being rebuilt, or held by a dead
 * letter), which promises nothing and has its own work. Through the activity, so the logical run
 * compares against the source databases' own view.
 */
import { describe, expect, it } from 'vitest';
import { usePipeline } from '../support/pipeline-fixture';
import { eventually, resetState } from '../support/env';

const { c, acts } = usePipeline('verify-tombstones', { config: { TOMBSTONE_TTL_S: '1' } });

/** A fresh store and source: one FC in region R1, these active SKUs with 5 in stock there. */
async function seedActive(skus: string[]): Promise<void> {
  await resetState(c);
  await acts.acquireDrainLease({ owner: 'verify-test' });
  await c.pool.query(`insert into shop.fulfillment_centers values ('F1', 'R1', 100, now())`);
  await c.pool.query(`insert into shop.region_fc values ('R1', 'F1', 1)`);
  await c.pool.query(`insert into shop.skus (sku_id, title, lifecycle) select unnest($1::text[]), 't', 'active'`, [
    skus,
  ]);
  await c.pool.query(`insert into shop.inventory select unnest($1::text[]), 'F1', 5, 0, now()`, [skus]);
}

describe('verify and expired tombstones', () => {
  it('a discontinued SKU gone from the store is not a mismatch; one whose lifecycle is wrong still is', async () => {
    await seedActive(['GONE', 'LIVE']);
    await c.pool.query(`update shop.skus set lifecycle = 'discontinued' where sku_id = 'GONE'`);
    for (;;) if ((await acts.drainBatch({ owner: 'verify-test' })).outcome === 'idle') break;
    await eventually(async () => (await c.redis.exists(c.keys.sku('GONE'))) === 0, 10_000, 'the tombstone to expire');
    const clean = await acts.verifyStore({ badgeSkus: 10, settleMs: 1000 });
    expect(clean.mismatches).toEqual([]);
    await c.redis.hset(c.keys.sku('LIVE'), '#', 'p|999999'); // a wrong value is still found
    const wrong = await acts.verifyStore({ badgeSkus: 10, settleMs: 1000 });
    expect(wrong.mismatches.map((m) => `${m.feature}:${m.key}`)).toContain('lifecycle:LIVE');
  });

  it('a SKU answered unknown while its stock is rebuilt or a dead letter holds it is not a badge mismatch; a wrong stock is', async () => {
    await seedActive(['RB', 'HD', 'OK']);
    for (;;) if ((await acts.drainBatch({ owner: 'verify-test' })).outcome === 'idle') break;
    await c.redis.sadd(c.keys.ofSku('RB').rebuilds, 'RB');
    await c.redis.hset(c.keys.ofSku('HD').held, 's:HD', String(Date.now()));
    const quiet = await acts.verifyStore({ badgeSkus: 10, settleMs: 1000 });
    expect(quiet.mismatches).toEqual([]);
    const stock = (await c.redis.hget(c.keys.sku('OK'), 'F1'))!;
    await c.redis.hset(c.keys.sku('OK'), 'F1', `0|${stock.split('|')[1]}`); // the store says none: out_of_stock
    const wrong = await acts.verifyStore({ badgeSkus: 10, settleMs: 1000 });
    expect(wrong.mismatches.map((m) => `${m.feature}:${m.key}`).sort()).toEqual(['available:OK|F1', 'badge:OK@R1']);
  });
});
