/**
 * A verify while the drain is behind (a backlog, a paused pipeline): what differs then may be lag
 * and nothing else, so it is left unjudged, neither counted as a mismatch nor repaired; once the
 * drain has caught up, the same verify finds nothing. (A verify whose settle time ran out used to
 * count the lag as mismatches and re-emit the rows: a false alarm in every long catch-up.)
 */
import { describe, expect, it } from 'vitest';
import { usePipeline } from '../support/pipeline-fixture';
import { resetState } from '../support/env';
import { setEpoch } from '../../store/watermark';
import { captured } from '../support/logical-run';

const owner = 'verify-behind';
const { c, acts } = usePipeline('verify-behind');

/** Everything committed so far in the store (captured first, in the logical run). */
async function drainAll(): Promise<void> {
  await captured();
  for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') return;
}

/**
 * A fresh shop in the store: FC F1 (serving region R1 when `region`), the SKUs active, 5 units at
 * F1 of those `stocked`, all drained.
 */
async function shopInStore(skus: string[], opts: { region?: boolean; stocked?: string[] } = {}): Promise<void> {
  await resetState(c);
  await acts.acquireDrainLease({ owner });
  await c.pool.query(`insert into shop.fulfillment_centers values ('F1', 'R1', 100, now())`);
  if (opts.region) await c.pool.query(`insert into shop.region_fc values ('R1', 'F1', 1)`);
  for (const sku of skus)
    await c.pool.query(`insert into shop.skus (sku_id, title, lifecycle) values ($1, 't', 'active')`, [sku]);
  for (const sku of opts.stocked ?? [])
    await c.pool.query(`insert into shop.inventory values ($1, 'F1', 5, 0, now())`, [sku]);
  await drainAll();
}

const named = (ms: { feature: string; key: string }[]) => ms.map((m) => `${m.feature}:${m.key}`);

describe('verify while the drain is behind', () => {
  it('leaves what the drain still owes unjudged and unrepaired, and judges the rest', async () => {
    await shopInStore(['A', 'B'], { region: true, stocked: ['A'] });

    // A sold out at the source: the change waits in the outbox, not applied (no drain runs) ...
    await c.pool.query(`update shop.inventory set on_hand = 0, updated_at = now() where sku_id = 'A'`);
    await captured();
    // ... while B is wrong in the store, which no change explains (an old version: a repair wins)
    await c.redis.hset(c.keys.sku('B'), '#', 'p|1');
    const full = await acts.verifyStore({ badgeSkus: 10, settleMs: 300 });
    expect(named(full.mismatches)).toContain('lifecycle:B');
    expect(full.mismatches.filter((m) => m.sku === 'A')).toEqual([]);
    expect(named(full.unjudged)).toContain('available:A|F1');

    const rowsOf = async (key: string) =>
      Number((await c.pool.query(`select count(*) from pipeline.outbox where key = $1`, [key])).rows[0].count);
    const aBefore = await rowsOf('A|F1');
    const sampled = await acts.verifyAndRepair({ sample: 10, badgeSkus: 10, settleMs: 300 });
    expect(sampled.mismatchCount).toBeGreaterThan(0);
    expect(sampled.unjudgedCount).toBeGreaterThan(0);
    expect(sampled.reemitted.refreshed).toBeGreaterThan(0); // B's row, re-read through the outbox
    expect(await rowsOf('A|F1')).toBe(aBefore); // nothing of A re-read into the backlog

    await drainAll();
    const after = await acts.verifyStore({ badgeSkus: 10, settleMs: 5_000 });
    expect(after.mismatches).toEqual([]);
    expect(after.unjudged).toEqual([]);
  });

  it("judges nothing while the store is being refilled (what is missing is the refill's to write)", async () => {
    await shopInStore(['C']);
    // a refill under way: the store is not complete (no epoch) and C is not written back yet
    await c.redis.del(...c.keys.partitions.map((p) => p.epoch));
    await c.redis.del(c.keys.sku('C'));
    const r = await acts.verifyStore({ badgeSkus: 10, settleMs: 1_000 });
    expect(r.mismatches).toEqual([]);
    expect(named(r.unjudged)).toContain('lifecycle:C');
    await setEpoch(c.redis, c.keys, 'test-refilled');
  });

  it('judges a store whose drain is stopped with nothing left to apply', async () => {
    await shopInStore(['B']);
    // damage no change explains, while no drain runs (paused): still found, as a mismatch
    await c.redis.hset(c.keys.sku('B'), '#', 'p|999999');
    const r = await acts.verifyStore({ badgeSkus: 10, settleMs: 1_000 });
    expect(named(r.mismatches)).toContain('lifecycle:B');
    expect(r.unjudged).toEqual([]);
  });
});
