/**
 * `ops inspect <sku>`: what the store holds for one SKU (decoded: values, versions, the key's TTL
 * in words), what the source says, and its badge per region, online and by the SQL rule.
 */
import { sourceBadges } from '../../reconcile/source-badges';
import { createBadgeReader } from '../../serving/badge-reader';
import { OpsContext } from './context';
import { describeBadge } from './explain';
import { readSourceSku } from './source-view';
import { readStoreSku } from './store-view';

export type Inspection = Awaited<ReturnType<typeof inspectSku>>;

export async function inspectSku(ctx: OpsContext, sku: string, region?: string) {
  const redis = await ctx.redis();
  const dbs = await ctx.sourceDatabases();
  const [store, source] = await Promise.all([readStoreSku(redis, ctx.keys, sku), readSourceSku(dbs.inventory, sku)]);
  const regions = region
    ? [region]
    : (await dbs.inventory.query('select distinct region from shop.region_fc order by 1')).rows.map(
        (r) => r.region as string,
      );
  const reader = createBadgeReader({
    redis,
    prefix: ctx.keys.prefix,
    partitions: ctx.keys.partitions.length,
    staleAfterMs: ctx.config.STALE_AFTER_MS,
  });
  const badges = [];
  for (const r of regions) {
    const online = await reader.getBadge(r, sku);
    const [sql] = await sourceBadges(dbs, r, [sku]);
    badges.push({ region: r, online, source: sql, agree: online.reason === sql.reason && online.fc === sql.fc });
  }
  return { sku, store, source, badges };
}

const version = (v: number | string | null) =>
  v === null ? '' : typeof v === 'string' ? ` (filled by backfill snapshot ${v})` : ` (version ${v})`;

export function printInspection(i: Inspection): void {
  const out = [i.sku, `  store (SKU key: ${i.store.ttl.text}):`];
  const l = i.store.lifecycle;
  out.push(`    lifecycle  ${l ? `${l.tombstone ? 'deleted (tombstone)' : l.value}${version(l.version)}` : 'none'}`);
  for (const s of i.store.stock)
    out.push(
      `    ${s.fc.padEnd(10)} ${s.tombstone ? 'deleted (tombstone)' : `${s.value} available`}${version(s.version)}`,
    );
  out.push('  source:');
  const row = i.source.sku;
  out.push(`    lifecycle  ${row ? `${row.lifecycle} (updated ${new Date(row.updated_at).toISOString()})` : 'no row'}`);
  for (const v of i.source.inventory)
    out.push(`    ${v.fc_id.padEnd(10)} ${v.available} available (on hand ${v.on_hand}, reserved ${v.reserved})`);
  out.push('  badges (online | source SQL):');
  for (const b of i.badges)
    out.push(
      `    ${b.region.padEnd(10)} ${describeBadge(b.online)}${b.online.stale ? ' (stale)' : ''} | ${describeBadge(b.source)}${b.agree ? '' : '  DIFFER'}`,
    );
  console.log(out.join('\n'));
}
