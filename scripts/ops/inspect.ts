/** `ops inspect <sku>`: what the store holds for one SKU, what the source says, and its badges. */
import { sourceBadges } from '../../reconcile/source-badges';
import { createBadgeReader } from '../../serving/badge-reader';
import { OpsContext } from './context';

export async function inspectSku(ctx: OpsContext, sku: string, region?: string) {
  const redis = await ctx.redis();
  const source = ctx.source();
  const store = await redis.hgetall(ctx.keys.sku(sku));
  const ttl = await redis.ttl(ctx.keys.sku(sku));
  const skuRow =
    (await source.query('select sku_id, title, lifecycle, updated_at from shop.skus where sku_id = $1', [sku]))
      .rows[0] ?? null;
  const inventory = (
    await source.query(
      'select fc_id, on_hand, reserved, on_hand - reserved as available from shop.inventory where sku_id = $1 order by fc_id',
      [sku],
    )
  ).rows;
  const regions = region
    ? [region]
    : (await source.query('select distinct region from shop.region_fc order by 1')).rows.map((r) => r.region as string);
  const reader = createBadgeReader({
    redis,
    prefix: ctx.keys.prefix,
    partitions: ctx.keys.partitions.length,
    staleAfterMs: ctx.config.STALE_AFTER_MS,
  });
  const badges = [];
  for (const r of regions) {
    const [online] = (await reader.getBadges(r, [sku])).badges;
    const [sql] = await sourceBadges(source, r, [sku]);
    badges.push({ region: r, online, source: sql, agree: online.reason === sql.reason && online.fc === sql.fc });
  }
  return { sku, store: { fields: store, ttlSeconds: ttl }, source: { sku: skuRow, inventory }, badges };
}
