/**
 * Two source databases beside the test pipeline database, as the contract allows: the inventory
 * service's (skus, fulfillment_centers, region_fc, inventory) and the order service's (orders),
 * each set up by sql/source-setup.sql (publication, replica identity, the capture role). Created
 * fresh per test file; their slots are dropped first (a database with a slot cannot be dropped).
 */
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { captureSources, type CaptureSource } from '../../capture/sources';
import { dropSlot } from '../../capture/slot';
import { TEST_DATABASE_URL } from './env';

const ROOT = path.resolve(__dirname, '..', '..');
const withDb = (url: string, db: string) => {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
};

export const TEST_INVENTORY_URL = withDb(TEST_DATABASE_URL, 'fresh_badges_test_inventory');
export const TEST_ORDERS_URL = withDb(TEST_DATABASE_URL, 'fresh_badges_test_orders');

/** The capture sources of the split layout (slot names derived from the test pipeline database). */
export function splitSources(): CaptureSource[] {
  return captureSources({
    DATABASE_URL: TEST_DATABASE_URL,
    INVENTORY_DATABASE_URL: TEST_INVENTORY_URL,
    ORDERS_DATABASE_URL: TEST_ORDERS_URL,
  });
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url, options: '-c TimeZone=UTC' });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Drops and re-creates both source databases with the shop schema and sql/source-setup.sql. */
export async function createSplitSources(): Promise<void> {
  const shop = fs.readFileSync(path.join(ROOT, 'migrations', '001_shop_schema.sql'), 'utf8');
  const setup = fs.readFileSync(path.join(ROOT, 'sql', 'source-setup.sql'), 'utf8');
  for (const [url, drop] of [
    [TEST_INVENTORY_URL, 'drop table shop.orders'],
    [TEST_ORDERS_URL, 'drop table shop.inventory, shop.region_fc, shop.skus, shop.fulfillment_centers'],
  ] as const) {
    const db = new URL(url).pathname.slice(1);
    await withClient(withDb(url, 'postgres'), async (admin) => {
      for (const s of splitSources()) await dropSlot(admin, s.slot).catch(() => {});
      await admin.query(`select pg_drop_replication_slot(slot_name) from pg_replication_slots where database = $1`, [
        db,
      ]);
      await admin.query(`drop database if exists ${pg.escapeIdentifier(db)} with (force)`);
      await admin.query(`create database ${pg.escapeIdentifier(db)}`);
    });
    await withClient(url, async (c) => {
      await c.query(shop);
      await c.query(drop);
      await c.query(setup);
    });
  }
}

/** Drops every slot of the split sources (end of a test file: a slot left behind keeps WAL forever). */
export async function dropSplitSourceSlots(): Promise<void> {
  await withClient(withDb(TEST_DATABASE_URL, 'postgres'), async (admin) => {
    for (const s of splitSources()) await dropSlot(admin, s.slot).catch(() => {});
  });
}

/** Forgets the pipeline's capture progress of the split sources. */
export async function resetCaptureProgress(pipeline: pg.Pool): Promise<void> {
  await pipeline.query(`delete from pipeline.capture_progress where source = any($1)`, [
    splitSources().map((s) => s.name),
  ]);
}

export { withClient };
