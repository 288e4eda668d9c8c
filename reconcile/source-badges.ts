/**
 * The badge rule computed by SQL straight from the shop tables: the design this product
 * replaces (a query per page view) and the reference the tests and `verify` compare against.
 * Same tie-breaks as features/badge-rule.ts: rank (nulls last), then fc id in code-unit order
 * (COLLATE "C": byte order, the same for the contract's ASCII ids, whatever the database's collation).
 *
 * With the orders in a database of their own (INVENTORY_DATABASE_URL / ORDERS_DATABASE_URL), the
 * day's load per FC is summed in the orders database first and handed to the same query, run in
 * the inventory database, as a parameter: the rule itself is the same SQL either way.
 */
import type pg from 'pg';
import type { Badge, Reason } from '../features/badge-rule';
import type { SourceDatabases } from './source-features';

type Db = pg.Pool | pg.ClientBase;

/** The day's load of one FC ($3: an instant of that UTC day), as the rule counts it, from shop.orders. */
const DAY = `date_trunc('day', $3::timestamptz at time zone 'UTC') at time zone 'UTC'`;
const LOAD_FROM_ORDERS = `coalesce((select sum(o.qty) from shop.orders o
                    where o.fc_id = rf.fc_id and o.status in ('placed', 'shipped')
                      and o.placed_at >= ${DAY} and o.placed_at < ${DAY} + interval '1 day'), 0)`;
/** … from the loads summed in the orders database ($3 FC ids, $4 their loads). */
const LOAD_FROM_PARAMS = `coalesce((select l.load from unnest($3::text[], $4::bigint[]) as l(fc_id, load)
                    where l.fc_id = rf.fc_id), 0)`;

const badgesSql = (loadExpr: string) => `
with fcs as (
  select rf.fc_id, rf.rank, f.daily_capacity, ${loadExpr} as load
    from shop.region_fc rf join shop.fulfillment_centers f on f.fc_id = rf.fc_id
   where rf.region = $1)
select q.sku, s.lifecycle,
       (select fcs.fc_id from fcs join shop.inventory i on i.fc_id = fcs.fc_id and i.sku_id = q.sku
         where i.on_hand - i.reserved > 0 and fcs.load < fcs.daily_capacity
         order by fcs.rank nulls last, fcs.fc_id collate "C" limit 1) as fc,
       exists (select 1 from fcs join shop.inventory i on i.fc_id = fcs.fc_id and i.sku_id = q.sku
                where i.on_hand - i.reserved > 0) as stock_in_region
  from unnest($2::text[]) with ordinality as q(sku, n)
  left join shop.skus s on s.sku_id = q.sku
 order by q.n`;

export const BADGES_SQL = badgesSql(LOAD_FROM_ORDERS);
const BADGES_WITH_LOADS_SQL = badgesSql(LOAD_FROM_PARAMS);

/** Every FC's load of the UTC day of `at` (non-zero only), summed in the orders database. */
const DAY_LOADS_SQL = `
select fc_id, sum(qty)::bigint::text as load from shop.orders
 where status in ('placed', 'shipped') and fc_id is not null
   and placed_at >= ${DAY.replaceAll('$3', '$1')} and placed_at < ${DAY.replaceAll('$3', '$1')} + interval '1 day'
 group by fc_id having sum(qty) <> 0`;

export async function sourceBadges(
  source: Db | SourceDatabases,
  region: string,
  skus: string[],
  at: Date = new Date(),
): Promise<Badge[]> {
  const { inventory, orders } = 'inventory' in source ? source : { inventory: source, orders: source };
  let rows: BadgeRow[];
  if (inventory === orders) {
    rows = (await inventory.query(BADGES_SQL, [region, skus, at.toISOString()])).rows;
  } else {
    const loads = (await orders.query<{ fc_id: string; load: string }>(DAY_LOADS_SQL, [at.toISOString()])).rows;
    rows = (
      await inventory.query(BADGES_WITH_LOADS_SQL, [region, skus, loads.map((l) => l.fc_id), loads.map((l) => l.load)])
    ).rows;
  }
  return rows.map(badgeOfRow);
}

type BadgeRow = { sku: string; lifecycle: string | null; fc: string | null; stock_in_region: boolean };

function badgeOfRow(row: BadgeRow): Badge {
  let reason: Reason;
  if (row.lifecycle === null) reason = 'unknown';
  else if (row.lifecycle === 'discontinued') reason = 'discontinued';
  else if (row.lifecycle === 'paused') reason = 'paused';
  else if (row.fc !== null) reason = 'eligible';
  else reason = row.stock_in_region ? 'fc_at_capacity' : 'out_of_stock';
  return { sku: row.sku, eligible: reason === 'eligible', fc: reason === 'eligible' ? row.fc : null, reason };
}
