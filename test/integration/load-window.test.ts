/**
 * The days of FC load the store keeps, and verify comparing exactly those (issue 21, point 7).
 * A load counter lives until the end of its UTC day plus LOAD_TTL_S; the backfill recomputes
 * those days and verify compares those days. Orders of older days, and orders on no countable day
 * (infinity), are in the source for ever: verify must not report them, and the scheduled verify
 * must not "repair" them; a real difference inside the window is still found and repaired.
 */
import { describe, expect, it } from 'vitest';
import { loadWindowStart, utcDay } from '../../features/definitions';
import { usePipeline } from '../support/pipeline-fixture';
import { backfillEverything } from '../support/backfill';
import { resetState } from '../support/env';

const DAY = 86_400_000;
const LOAD_TTL_S = 2 * 86_400;
const { c, acts } = usePipeline('load-window', { config: { LOAD_TTL_S: String(LOAD_TTL_S) } });
const owner = 'load-window-test';

async function drainAll(): Promise<void> {
  for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') return;
}

/** A small catalogue with orders today, yesterday, 10 days ago and at infinity, drained. */
async function installWithHistory(): Promise<void> {
  await resetState(c);
  await acts.acquireDrainLease({ owner });
  await c.pool.query(`insert into shop.fulfillment_centers values ('F1', 'R1', 100, now()), ('F2', 'R1', 100, now())`);
  await c.pool.query(`insert into shop.region_fc values ('R1', 'F1', 1), ('R1', 'F2', 2)`);
  await c.pool.query(`insert into shop.skus (sku_id, title, lifecycle) values ('S1', 't', 'active')`);
  await c.pool.query(`insert into shop.inventory values ('S1', 'F1', 5, 0, now()), ('S1', 'F2', 5, 0, now())`);
  await c.pool.query(
    `insert into shop.orders (sku_id, fc_id, qty, status, placed_at) values
       ('S1', 'F1', 3, 'placed', now()),
       ('S1', 'F1', 4, 'shipped', now() - interval '1 day'),
       ('S1', 'F2', 5, 'placed', now() - interval '10 days'),
       ('S1', 'F2', 6, 'placed', 'infinity')`,
  );
  await drainAll();
}

describe('the load window', () => {
  it('a counter lives until the end of its UTC day plus LOAD_TTL_S; a day past that is not kept', async () => {
    await installWithHistory();
    const p = c.keys.partitions[0];
    const now = Date.now();
    const today = utcDay(new Date(now));
    const ttl = await c.redis.pttl(p.load('F1', today));
    const endOfToday = Date.parse(`${today.slice(0, 4)}-${today.slice(4, 6)}-${today.slice(6)}T00:00:00Z`) + DAY;
    expect(Math.abs(now + ttl - (endOfToday + LOAD_TTL_S * 1000))).toBeLessThan(2_000);
    expect(await c.redis.exists(p.load('F2', utcDay(new Date(now - 10 * DAY))))).toBe(0);
    expect(loadWindowStart(now, LOAD_TTL_S)).toBe(utcDay(new Date(now - 2 * DAY)));
  });

  it('verify exits clean on a correct store with history and the scheduled verify repairs nothing', async () => {
    await installWithHistory();
    await backfillEverything(acts, 'load-window');
    await drainAll();
    const report = await acts.verifyStore({ badgeSkus: 10, settleMs: 500 });
    expect(report.mismatches).toEqual([]);
    const scheduled = await acts.verifyAndRepair({ sample: 10, settleMs: 500 });
    expect(scheduled).toMatchObject({ mismatchCount: 0, loadCounters: 0 });
  });

  it('a load counter wrong inside the window is still found and repaired', async () => {
    await installWithHistory();
    const key = c.keys.partitions[0].load('F1', utcDay(new Date()));
    await c.redis.hincrby(key, 'n', 50);
    const scheduled = await acts.verifyAndRepair({ sample: 10, settleMs: 500 });
    expect(scheduled.mismatches.map((m) => `${m.feature}:${m.key}`)).toContain(`load:F1|${utcDay(new Date())}`);
    expect(scheduled.loadCounters).toBeGreaterThan(0);
    expect(await c.redis.hget(key, 'n')).toBe('3');
    expect((await acts.verifyStore({ badgeSkus: 10, settleMs: 500 })).mismatches).toEqual([]);
  });
});
