/**
 * The simulator with the orders in a database of their own (two services, no transaction across
 * them): an order whose insert fails gives its reservation back, so a failed order never leaves
 * stock reserved for nothing (which would make the badge under-promise for good).
 */
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { CatalogueSize, seedCatalogue } from '../../simulator/catalogue';
import { runTraffic } from '../../simulator/traffic';
import { withDatabase } from '../../scripts/lib/source-databases';
import { resetState, testClients } from '../support/env';
import { TEST_DATABASE_URL } from '../support/test-urls';
import { trafficTarget } from '../support/logical-run';

const size: CatalogueSize = { skus: 50, fcs: 2, regions: 1, fcsPerRegion: 2, fcsPerSku: 2 };
const c = testClients();
// An order service whose inserts fail: its database has no shop.orders table.
const brokenOrders = new pg.Pool({ connectionString: withDatabase(TEST_DATABASE_URL, 'postgres'), max: 4 });
afterAll(async () => {
  await brokenOrders.end();
  await c.close();
});

const reserved = async (inventory: pg.Pool) =>
  Number((await inventory.query(`select coalesce(sum(reserved), 0)::bigint as n from shop.inventory`)).rows[0].n);

describe('simulator, orders apart', () => {
  it('an order whose insert fails releases its reservation', async () => {
    await resetState(c);
    await seedCatalogue(c.pool, size);
    // the inventory service's tables wherever this run keeps them (the logical run: their own database)
    const shop = trafficTarget(c.pool);
    const inventory = shop instanceof pg.Pool ? shop : shop.inventory;
    const before = await reserved(inventory);

    const stats = await runTraffic(
      { inventory, orders: brokenOrders },
      { rate: 0, durationMs: 1500, connections: 4, seed: 3, size },
    );

    expect(stats.failed).toBeGreaterThan(0); // orders were attempted, and failed
    expect(stats.byKind.place ?? 0).toBe(0);
    expect(await reserved(inventory)).toBe(before);
  });
});
