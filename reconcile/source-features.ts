/**
 * The feature values as the source says they are, computed by SQL straight from the shop tables.
 * Used by the reconciliation check and the tests; never on the read path.
 */
import type pg from 'pg';
import { dayStartIso, PLACED_ON_A_DAY_SQL, RANK_NULL } from '../features/definitions';

type Queryable = pg.Pool | pg.ClientBase;

/** The two source databases (the inventory service's and the order service's), when they differ. */
export interface SourceDatabases {
  inventory: Queryable;
  orders: Queryable;
}

export interface FeatureSnapshot {
  lifecycle: Map<string, string>; // sku -> lifecycle
  available: Map<string, number>; // sku|fc -> available
  capacity: Map<string, number>; // fc -> daily capacity
  rank: Map<string, number>; // region|fc -> rank
  load: Map<string, number>; // fc|yyyymmdd -> load (non-zero only)
}

export function emptySnapshot(): FeatureSnapshot {
  return { lifecycle: new Map(), available: new Map(), capacity: new Map(), rank: new Map(), load: new Map() };
}

/**
 * `skus: false` leaves the per-SKU features out (verify compares those in chunks). `loadsFrom`
 * (yyyymmdd): loads of that day and later only (the days the store keeps: loadWindowStart).
 * Orders placed on no countable day (infinity, before AD 1) count nowhere, as in the drain.
 */
export async function sourceFeatures(
  source: Queryable | SourceDatabases,
  opts: { skus?: boolean; loadsFrom?: string } = {},
): Promise<FeatureSnapshot> {
  const { inventory: db, orders } = 'inventory' in source ? source : { inventory: source, orders: source };
  const snap = emptySnapshot();
  if (opts.skus !== false) {
    for (const r of (await db.query('select sku_id, lifecycle from shop.skus')).rows)
      snap.lifecycle.set(r.sku_id, r.lifecycle);
    for (const r of (await db.query('select sku_id, fc_id, on_hand - reserved as a from shop.inventory')).rows)
      snap.available.set(`${r.sku_id}|${r.fc_id}`, r.a);
  }
  for (const r of (await db.query('select fc_id, daily_capacity from shop.fulfillment_centers')).rows)
    snap.capacity.set(r.fc_id, r.daily_capacity);
  for (const r of (await db.query('select region, fc_id, rank from shop.region_fc')).rows)
    snap.rank.set(`${r.region}|${r.fc_id}`, r.rank ?? RANK_NULL);
  const loads = await orders.query(
    `select fc_id, to_char(placed_at at time zone 'UTC', 'YYYYMMDD') as day, sum(qty)::int as load
       from shop.orders where status in ('placed', 'shipped') and fc_id is not null and qty is not null
        and ${PLACED_ON_A_DAY_SQL} and placed_at >= $1::timestamptz
      group by 1, 2 having sum(qty) <> 0`,
    [opts.loadsFrom ? dayStartIso(opts.loadsFrom) : '0001-01-01T00:00:00Z'],
  );
  for (const r of loads.rows) snap.load.set(`${r.fc_id}|${r.day}`, r.load);
  return snap;
}
