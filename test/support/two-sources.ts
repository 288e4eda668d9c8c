/**
 * What the tests of capture from two source databases share: waiting for the store to equal the
 * badge rule computed over both sources, the small two-FC shop they seed, and forgetting the
 * sources afterwards (a slot left behind keeps its source's WAL).
 */
import type pg from 'pg';
import { compareSnapshots } from '../../reconcile/compare';
import { sourceFeatures } from '../../reconcile/source-features';
import { storeFeatures } from '../../reconcile/store-features';
import type { StoreKeys } from '../../store/keys';
import type { StoreRedis } from '../../store/redis-client';
import { eventually } from './env';
import { dropSlotUnderCapture } from './split-sources';

/** Waits until the store equals the rule over both sources; the error names the first differences. */
export function storeEqualsRule(
  store: { redis: StoreRedis; keys: StoreKeys },
  sources: { inventory: pg.Pool; orders: pg.Pool },
  timeoutMs = 30_000,
  what = 'the store to equal the rule over both sources',
): Promise<true> {
  return eventually(
    async () => {
      const diff = compareSnapshots(await sourceFeatures(sources), await storeFeatures(store.redis, store.keys));
      if (diff.length) throw new Error(`${diff.length} differences, e.g. ${JSON.stringify(diff.slice(0, 3))}`);
      return true as const;
    },
    timeoutMs,
    what,
  );
}

/** Region R1 with FC-1 (rank 1, capacity 80) and FC-2 (rank 2, capacity 1000); each SKU active with 20 units at both. */
export async function seedTwoFcShop(inventory: pg.Pool, skus: string[]): Promise<void> {
  await inventory.query(
    `insert into shop.fulfillment_centers values ('FC-1', 'R1', 80, now()), ('FC-2', 'R1', 1000, now())`,
  );
  await inventory.query(`insert into shop.region_fc values ('R1', 'FC-1', 1), ('R1', 'FC-2', 2)`);
  await inventory.query(`insert into shop.skus select unnest($1::text[]), 't', 'active', now()`, [skus]);
  await inventory.query(
    `insert into shop.inventory select s, fc, 20, 0, now() from unnest($1::text[]) s, (values ('FC-1'), ('FC-2')) f(fc)`,
    [skus],
  );
}

/** Drops the orders source's slot on the shared server and forgets every source's capture progress. */
export async function forgetSources(pipeline: pg.Pool, ordersUrl: string, ordersSlot: string): Promise<void> {
  await dropSlotUnderCapture(ordersUrl, ordersSlot).catch(() => {});
  await pipeline.query(`delete from pipeline.capture_progress`);
}
