/**
 * The badge rule computed by SQL straight from the shop tables: the design this product
 * replaces (a query per page view) and the reference the tests and `verify` compare against.
 * Same tie-breaks as features/badge-rule.ts: rank (nulls last), then fc id.
 */
import type pg from 'pg';
import type { Badge, Reason } from '../features/badge-rule';

export const BADGES_SQL = `
with day as (select date_trunc('day', $3::timestamptz at time zone 'UTC') at time zone 'UTC' as d0),
fcs as (
  select rf.fc_id, rf.rank, f.daily_capacity,
         coalesce((select sum(o.qty) from shop.orders o, day
                    where o.fc_id = rf.fc_id and o.status in ('placed', 'shipped')
                      and o.placed_at >= day.d0 and o.placed_at < day.d0 + interval '1 day'), 0) as load
    from shop.region_fc rf join shop.fulfillment_centers f on f.fc_id = rf.fc_id
   where rf.region = $1)
select q.sku, s.lifecycle,
       (select fcs.fc_id from fcs join shop.inventory i on i.fc_id = fcs.fc_id and i.sku_id = q.sku
         where i.on_hand - i.reserved > 0 and fcs.load < fcs.daily_capacity
         order by fcs.rank nulls last, fcs.fc_id limit 1) as fc,
       exists (select 1 from fcs join shop.inventory i on i.fc_id = fcs.fc_id and i.sku_id = q.sku
                where i.on_hand - i.reserved > 0) as stock_in_region
  from unnest($2::text[]) with ordinality as q(sku, n)
  left join shop.skus s on s.sku_id = q.sku
 order by q.n`;

export async function sourceBadges(
  db: pg.Pool | pg.ClientBase,
  region: string,
  skus: string[],
  at: Date = new Date(),
): Promise<Badge[]> {
  const r = await db.query(BADGES_SQL, [region, skus, at.toISOString()]);
  return r.rows.map((row): Badge => {
    let reason: Reason;
    if (row.lifecycle === null) reason = 'unknown';
    else if (row.lifecycle === 'discontinued') reason = 'discontinued';
    else if (row.lifecycle === 'paused') reason = 'paused';
    else if (row.fc !== null) reason = 'eligible';
    else reason = row.stock_in_region ? 'fc_at_capacity' : 'out_of_stock';
    return { sku: row.sku, eligible: reason === 'eligible', fc: reason === 'eligible' ? row.fc : null, reason };
  });
}
