/**
 * What the source tables say of one SKU and one region (`ops inspect`, `ops explain`), read-only,
 * from the replica when one is configured: the same facts the store holds, computed by SQL, for a
 * side-by-side comparison. The day's load is summed where the orders are (their own database
 * when ORDERS_DATABASE_URL names one), as reconcile/source-badges.ts does.
 */
import type pg from 'pg';
import type { RegionFc } from '../../features/badge-rule';
import { RANK_NULL, type Lifecycle } from '../../features/definitions';
import type { SourceDatabases } from '../../reconcile/source-features';

type Db = pg.Pool | pg.ClientBase;

export interface SourceSku {
  sku: { sku_id: string; title: string | null; lifecycle: Lifecycle; updated_at: Date } | null;
  inventory: { fc_id: string; on_hand: number; reserved: number; available: number }[];
}

export async function readSourceSku(db: Db, sku: string): Promise<SourceSku> {
  const skuRow =
    (await db.query('select sku_id, title, lifecycle, updated_at from shop.skus where sku_id = $1', [sku])).rows[0] ??
    null;
  const inventory = (
    await db.query(
      'select fc_id, on_hand, reserved, on_hand - reserved as available from shop.inventory where sku_id = $1 order by fc_id',
      [sku],
    )
  ).rows;
  return { sku: skuRow, inventory };
}

/** The UTC day of `at` as the rule counts loads: [start, end) as ISO times. */
function dayBounds(at: Date): [string, string] {
  const start = Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate());
  return [new Date(start).toISOString(), new Date(start + 86_400_000).toISOString()];
}

/** The region's FCs with rank (null rank: last), capacity and the load of the UTC day of `at`. */
export async function readSourceRegion(dbs: SourceDatabases, region: string, at: Date): Promise<RegionFc[]> {
  const fcs = (
    await dbs.inventory.query<{ fc_id: string; rank: number | null; daily_capacity: number | null }>(
      `select rf.fc_id, rf.rank, f.daily_capacity
         from shop.region_fc rf left join shop.fulfillment_centers f on f.fc_id = rf.fc_id
        where rf.region = $1`,
      [region],
    )
  ).rows;
  const [from, to] = dayBounds(at);
  const loads = (
    await dbs.orders.query<{ fc_id: string; load: string }>(
      `select fc_id, sum(qty)::bigint::text as load from shop.orders
        where status in ('placed', 'shipped') and fc_id = any($1) and placed_at >= $2 and placed_at < $3
        group by fc_id`,
      [fcs.map((f) => f.fc_id), from, to],
    )
  ).rows;
  const loadOf = new Map(loads.map((l) => [l.fc_id, Number(l.load)]));
  return fcs.map((f) => ({
    fc: f.fc_id,
    rank: f.rank ?? RANK_NULL,
    capacity: f.daily_capacity,
    load: loadOf.get(f.fc_id) ?? 0,
  }));
}
