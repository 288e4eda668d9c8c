/**
 * The badge rule's tie-break between FCs of equal rank is the FC id in code-unit order
 * (features/badge-rule.ts, the store's read script alike). The SQL reference that verify compares
 * the store with (reconcile/source-badges.ts) must break ties the same way whatever the source
 * database's collation: under a linguistic one ('b1' before 'B2'), a plain ORDER BY fc_id would
 * pick another FC than the store, and verify would report (and repair) a difference that is none.
 */
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rankRegionFcs } from '../../features/badge-rule';
import { sourceBadges } from '../../reconcile/source-badges';
import { TEST_DATABASE_URL } from '../support/test-urls';

const name = 'fresh_badges_test_icu';
const url = new URL(TEST_DATABASE_URL);
const adminUrl = Object.assign(new URL(url), { pathname: '/postgres' }).toString();
const icuUrl = Object.assign(new URL(url), { pathname: `/${name}` }).toString();
let pool: pg.Pool;

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  await admin(`drop database if exists ${name}`);
  await admin(
    `create database ${name} template template0 locale_provider icu icu_locale 'und' locale 'C.UTF-8' encoding 'UTF8'`,
  );
  pool = new pg.Pool({ connectionString: icuUrl, max: 2 });
  await pool.query(fs.readFileSync(path.join(__dirname, '../../migrations/001_shop_schema.sql'), 'utf8'));
});
afterAll(async () => {
  await pool?.end();
  await admin(`drop database if exists ${name}`);
});

describe('the rule under a linguistic collation', () => {
  it('breaks a rank tie by FC id in code-unit order, as the store does', async () => {
    expect((await pool.query(`select 'b1' < 'B2' as linguistic`)).rows[0].linguistic).toBe(true); // the premise
    await pool.query(`insert into shop.skus values ('S1', 't', 'active', now())`);
    await pool.query(`insert into shop.fulfillment_centers values ('b1', 'R1', 10, now()), ('B2', 'R1', 10, now())`);
    await pool.query(`insert into shop.region_fc values ('R1', 'b1', 1), ('R1', 'B2', 1)`);
    await pool.query(`insert into shop.inventory values ('S1', 'b1', 5, 0, now()), ('S1', 'B2', 5, 0, now())`);
    const storeOrder = rankRegionFcs([
      { fc: 'b1', rank: 1, capacity: 10, load: 0 },
      { fc: 'B2', rank: 1, capacity: 10, load: 0 },
    ]).map((f) => f.fc);
    expect(storeOrder[0]).toBe('B2');
    const [badge] = await sourceBadges(pool, 'R1', ['S1']);
    expect(badge).toMatchObject({ sku: 'S1', fc: 'B2' });
  });
});
