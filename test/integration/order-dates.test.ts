/**
 * Orders with any valid timestamptz (issue 21, point 3). PostgreSQL accepts `infinity`,
 * `-infinity`, BC dates and years up to 294276; the badge rule counts an order on the UTC day of
 * placed_at, so such an image counts on no day the rule can be asked about, and the rest of the
 * change still applies.
 *  - a property over dates written by PostgreSQL itself (random instants, random session time
 *    zones): the day the pipeline takes from the captured JSON is the day its SQL computes
 *    (PLACED_ON_A_DAY_SQL: AD, and before the last day a JavaScript Date reaches), or none for both;
 *  - through the real drain: a draft at `infinity` that is then placed counts today, a later
 *    delete takes it back to 0 (never below), nothing is dead-lettered.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { PLACED_ON_A_DAY_SQL, placedDay, utcDay } from '../../features/definitions';
import { compareSnapshots } from '../../reconcile/compare';
import { sourceFeatures } from '../../reconcile/source-features';
import { storeFeatures } from '../../reconcile/store-features';
import { CatalogueSize, seedCatalogue, skuId } from '../../simulator/catalogue';
import { activitiesFor } from '../support/activities';
import { pipelineClients, resetState, testClients } from '../support/env';

const c = testClients();
afterAll(() => c.close());
const owner = 'order-dates-test';
const size: CatalogueSize = { skus: 10, fcs: 2, regions: 1, fcsPerRegion: 2, fcsPerSku: 1 };

// and POSIX zones, whose offsets PostgreSQL writes past a day (+167:00 at most)
const ZONES = [
  'UTC',
  'America/Los_Angeles',
  'Asia/Kolkata',
  'Pacific/Chatham',
  'Europe/Amsterdam',
  'Asia/Kathmandu',
  '<+167>-167',
  '<-25:30>+25:30',
];
/** Seconds from 4713 BC to 294276 AD, PostgreSQL's timestamptz range (with a margin). */
const MIN_S = -210_000_000_000;
const MAX_S = 9_200_000_000_000;

describe('orders the rule can date', () => {
  it('the day taken from the captured image is the day SQL computes, for any timestamptz', async () => {
    const client = await c.pool.connect();
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            { weight: 1, arbitrary: fc.constantFrom('infinity', '-infinity') },
            { weight: 6, arbitrary: fc.integer({ min: MIN_S, max: MAX_S }).map(String) },
            { weight: 6, arbitrary: fc.integer({ min: -62_135_596_800, max: 253_402_300_799 }).map(String) },
          ),
          fc.constantFrom(...ZONES),
          fc.integer({ min: 0, max: 999_999 }),
          async (instant, zone, micros) => {
            await client.query(`set time zone '${zone}'`);
            const r = await client.query(
              `with t as (select case when $1 in ('infinity', '-infinity') then $1::timestamptz
                                      else to_timestamp($1::float8) + make_interval(secs => $2::float8 / 1e6) end as placed_at)
               select to_jsonb(placed_at) #>> '{}' as json,
                      case when ${PLACED_ON_A_DAY_SQL} then to_char(placed_at at time zone 'UTC', 'YYYYMMDD') end as day
                 from t`,
              [instant, micros],
            );
            const { json, day } = r.rows[0] as { json: string; day: string | null };
            // the pipeline's SQL (the verify's, the refill's) and its reading of the image agree
            expect({ json, ours: placedDay(json) }).toEqual({ json, ours: day });
          },
        ),
        {
          numRuns: 400,
          // the ends of the days both count: AD 1 and JavaScript's last day, to the microsecond
          examples: [
            ['8639999999999', 'UTC', 999_999],
            ['8640000000000', 'UTC', 0],
            ['8640000000000', 'Asia/Kolkata', 1],
            ['8639999990000', '<+167>-167', 0],
            ['-62135596800', 'UTC', 0],
            ['-62135596801', 'Pacific/Chatham', 999_999],
          ],
        },
      );
    } finally {
      await client.query(`reset time zone`);
      client.release();
    }
  });

  it('a draft at infinity that is then placed counts today; deleted, it leaves 0; nothing is dead-lettered', async () => {
    const acts = activitiesFor(pipelineClients(c));
    await resetState(c);
    await acts.acquireDrainLease({ owner });
    await seedCatalogue(c.pool, size);
    const drain = async () => {
      for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') return;
    };
    const today = utcDay(new Date());
    const load = async () => Number((await c.redis.hget(c.keys.partitions[0].load('FC-000', today), 'n')) ?? 0);
    await drain();
    const { rows } = await c.pool.query(
      `insert into shop.orders (sku_id, fc_id, qty, status, placed_at) values
         ($1, 'FC-000', 3, 'placed', 'infinity'), ($1, 'FC-000', 4, 'placed', '-infinity'),
         ($1, 'FC-000', 5, 'placed', '0044-03-15 12:00+00 BC'), ($1, 'FC-000', 6, 'placed', '294276-01-01 00:00+00')
       returning order_id`,
      [skuId(0)],
    );
    await drain();
    expect(await load()).toBe(0);
    await c.pool.query(`update shop.orders set placed_at = now() where order_id = any($1)`, [
      rows.map((r) => r.order_id),
    ]);
    await drain();
    expect(await load()).toBe(3 + 4 + 5 + 6);
    await c.pool.query(`update shop.orders set placed_at = 'infinity' where order_id = $1`, [rows[0].order_id]);
    await drain();
    expect(await load()).toBe(4 + 5 + 6);
    await c.pool.query(`delete from shop.orders`);
    await drain();
    expect(await load()).toBe(0);
    expect((await c.pool.query(`select count(*)::int as n from pipeline.dead_letters`)).rows[0].n).toBe(0);
    expect(compareSnapshots(await sourceFeatures(c.pool), await storeFeatures(c.redis, c.keys))).toEqual([]);
  });
});
