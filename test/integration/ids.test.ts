/**
 * Every id the contract allows works end to end (issue 11): all-digit ids ("2", "10", "007" beside "7"), ids equal to
 * internal or JavaScript names ("_", "__proto__", "constructor", "hasOwnProperty"), 128 characters.
 * A property-based test builds catalogues from generated ids, drains them through the real
 * pipeline, and compares the read library and the HTTP API with the badge rule computed by SQL,
 * before and after an FC leaves the region.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { usePipeline } from '../support/pipeline-fixture';
import { sourceBadges } from '../../reconcile/source-badges';
import { resetState } from '../support/env';
import { get, rawRequest } from '../support/http';

const pipeline = usePipeline('ids', { api: {} });
const { c, acts } = pipeline;
const owner = 'ids-test';

const TRICKY = [
  '2',
  '10',
  '0',
  // ids a number parser would fold together or change: '007' and '7', '1e3' and '1000', '9007199254740993' (2^53 + 1)
  '007',
  '7',
  '1e3',
  '1000',
  '0x10',
  '16',
  '1.0',
  '-0',
  'NaN',
  'Infinity',
  '9007199254740993',
  '9007199254740992',
  '.',
  '..',
  '_',
  '__proto__',
  'constructor',
  'hasOwnProperty',
  'toString',
  'valueOf',
  'x'.repeat(128),
  '.',
  ':',
  '-',
  'a:b',
  'l:x:20260101',
];
const id = fc.oneof(fc.constantFrom(...TRICKY), fc.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/));

async function drainAll(): Promise<void> {
  for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') return;
}

async function compare(region: string, skus: string[]): Promise<void> {
  const sql = await sourceBadges(c.pool, region, skus);
  const lib = await pipeline.api.reader.getBadges(region, skus);
  expect(lib.badges).toEqual(sql);
  const http = await get(
    `${pipeline.api.base}/v1/badges?region=${encodeURIComponent(region)}&skus=${skus.map(encodeURIComponent).join(',')}`,
  );
  expect(http.status).toBe(200);
  expect(http.body.badges).toEqual(sql);
  for (const sku of skus.slice(0, 2)) {
    // "." and ".." are dot segments to every URL parser (even percent-encoded), so a standard
    // client cannot put them in the path; they work in the query form above, and raw below.
    if (sku === '.' || sku === '..') {
      const raw = await rawRequest(
        Number(new URL(pipeline.api.base).port),
        `GET /v1/badges/${sku === '.' ? '%2E' : '%2E%2E'}?region=${encodeURIComponent(region)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      );
      expect(raw).toMatch(/^HTTP\/1.1 200/);
      expect(raw).toContain(`"sku":${JSON.stringify(sku)}`);
      continue;
    }
    const one = await get(
      `${pipeline.api.base}/v1/badges/${encodeURIComponent(sku)}?region=${encodeURIComponent(region)}`,
    );
    expect(one.status).toBe(200);
    expect({ sku: one.body.sku, eligible: one.body.eligible, fc: one.body.fc, reason: one.body.reason }).toEqual(
      sql[skus.indexOf(sku)],
    );
  }
}

describe('ids', () => {
  it('FCs "2" and "10" in one region (10 inserted first), "_" and "__proto__": the right FC, and out_of_stock once 10 leaves', async () => {
    await resetState(c);
    await acts.acquireDrainLease({ owner });
    await c.pool.query(
      `insert into shop.fulfillment_centers values ('10', 'R', 100, now()), ('2', 'R', 100, now()), ('_', 'R', 100, now()), ('__proto__', 'R', 100, now())`,
    );
    await c.pool.query(
      `insert into shop.region_fc values ('R', '10', 1), ('R', '2', 2), ('R', '_', 3), ('R', '__proto__', 4)`,
    );
    await c.pool.query(
      `insert into shop.skus (sku_id, title, lifecycle) values ('S', 't', 'active'), ('_', 't', 'active'), ('constructor', 't', 'active')`,
    );
    await c.pool.query(
      `insert into shop.inventory values ('S', '10', 5, 0, now()), ('S', '2', 0, 0, now()), ('_', '_', 3, 0, now()), ('constructor', '__proto__', 1, 0, now())`,
    );
    await drainAll();
    await compare('R', ['S', '_', 'constructor', '__proto__']);
    expect((await pipeline.api.reader.getBadge('R', 'S')).fc).toBe('10');
    expect((await pipeline.api.reader.getBadge('R', '_')).fc).toBe('_');
    expect((await pipeline.api.reader.getBadge('R', 'constructor')).fc).toBe('__proto__');
    await c.pool.query(`delete from shop.region_fc where fc_id = '10'`);
    await drainAll();
    await compare('R', ['S', '_', 'constructor']);
    expect((await pipeline.api.reader.getBadge('R', 'S')).reason).toBe('out_of_stock');
  });

  it('verify reports an FC named like a JavaScript built-in that the store lacks, as any other', async () => {
    // (the state the test above left: SKU S, the drain holding its lease)
    await c.pool.query(
      `insert into shop.fulfillment_centers values ('toString', 'R', 100, now()), ('constructor', 'R', 100, now())`,
    );
    await drainAll();
    // not drained yet: the store's hash of S lacks both fields
    await c.pool.query(
      `insert into shop.inventory values ('S', 'toString', 4, 0, now()), ('S', 'constructor', 2, 0, now())`,
    );
    const report = await acts.verifyStore({ badgeSkus: 0, settleMs: 200 });
    const missing = [...report.mismatches, ...report.unjudged].filter((m) => m.feature === 'available');
    expect(missing.map((m) => [m.key, m.source, m.store]).sort()).toEqual([
      ['S|constructor', 2, undefined],
      ['S|toString', 4, undefined],
    ]);
    await drainAll();
    expect((await acts.verifyStore({ badgeSkus: 0, settleMs: 200 })).mismatches).toEqual([]);
  });

  it('generated ids: library and API equal the SQL rule', async () => {
    await fc.assert(
      fc.asyncProperty(
        id,
        fc.uniqueArray(
          fc.record({
            id,
            rank: fc.integer({ min: 1, max: 3 }),
            capacity: fc.integer({ min: 0, max: 3 }),
            load: fc.integer({ min: 0, max: 3 }),
          }),
          { minLength: 1, maxLength: 4, selector: (f) => f.id },
        ),
        fc.uniqueArray(
          fc.record({
            id,
            lifecycle: fc.constantFrom('active', 'active', 'paused', 'discontinued'),
            stock: fc.array(fc.integer({ min: -1, max: 2 }), { minLength: 4, maxLength: 4 }),
          }),
          { minLength: 1, maxLength: 5, selector: (s) => s.id },
        ),
        fc.nat(3),
        async (region, fcs, skus, leaving) => {
          await resetState(c);
          await acts.acquireDrainLease({ owner });
          for (const f of fcs) {
            await c.pool.query(`insert into shop.fulfillment_centers values ($1, $2, $3, now())`, [
              f.id,
              region,
              f.capacity,
            ]);
            await c.pool.query(`insert into shop.region_fc values ($1, $2, $3)`, [region, f.id, f.rank]);
            for (let n = 0; n < f.load; n++)
              await c.pool.query(
                `insert into shop.orders (sku_id, fc_id, qty, status) values ('any', $1, 1, 'placed')`,
                [f.id],
              );
          }
          for (const s of skus) {
            await c.pool.query(`insert into shop.skus (sku_id, title, lifecycle) values ($1, 't', $2)`, [
              s.id,
              s.lifecycle,
            ]);
            for (const [i, f] of fcs.entries()) {
              if (s.stock[i] < 0) continue; // no inventory row there
              await c.pool.query(`insert into shop.inventory values ($1, $2, $3, 0, now())`, [s.id, f.id, s.stock[i]]);
            }
          }
          await drainAll();
          const asked = skus.map((s) => s.id);
          if (!asked.includes('never-seen-sku')) asked.push('never-seen-sku'); // one the store does not know
          await compare(region, asked);
          // An FC leaves the region.
          await c.pool.query(`delete from shop.region_fc where region = $1 and fc_id = $2`, [
            region,
            fcs[leaving % fcs.length].id,
          ]);
          await drainAll();
          await compare(region, asked);
        },
      ),
      { numRuns: Number(process.env.ID_RUNS ?? 30) },
    );
  });
});
