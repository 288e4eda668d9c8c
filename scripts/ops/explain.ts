/**
 * `ops explain SKU --region R`: the badge and why, for a person. The same rule (features/
 * badge-rule.ts) over what the online store holds and over what the source tables say, side by
 * side, each FC of the region in the order the rule tries it, with the store's freshness. The
 * online badge is also read through the real read path (serving/badge-reader.ts): that is the
 * answer callers get, and the explanation is checked against it.
 */
import { explainBadge, type BadgeExplanation } from '../../features/badge-explain';
import type { Badge } from '../../features/badge-rule';
import { utcDay, type Lifecycle } from '../../features/definitions';
import { sourceBadges } from '../../reconcile/source-badges';
import { createBadgeReader, type Freshness } from '../../serving/badge-reader';
import type { OpsContext } from './context';
import { readSourceRegion, readSourceSku } from './source-view';
import { readStoreRegion, readStoreSku, type Ttl } from './store-view';

export interface Explanation {
  sku: string;
  region: string;
  /** The UTC day loads count on (yyyymmdd). */
  day: string;
  /** The badge callers get now (the read path), and the store's freshness behind it. */
  answer: Badge & Freshness;
  online: BadgeExplanation & { lifecycle: Lifecycle | null; ttl: Ttl };
  source: BadgeExplanation & { lifecycle: Lifecycle | null };
  /** Online and source give the same badge (reason and FC). */
  agree: boolean;
  /** The facts that differ between the store and the source, one line each. */
  differences: string[];
}

export async function explainSku(ctx: OpsContext, sku: string, region: string): Promise<Explanation> {
  const at = new Date();
  const day = utcDay(at);
  const redis = await ctx.redis();
  const dbs = await ctx.sourceDatabases();
  const reader = createBadgeReader({
    redis,
    prefix: ctx.keys.prefix,
    partitions: ctx.keys.partitions.length,
    staleAfterMs: ctx.config.STALE_AFTER_MS,
    now: () => at.getTime(),
  });
  const [answer, store, storeFcs, src, srcFcs, [sqlBadge]] = await Promise.all([
    reader.getBadge(region, sku),
    readStoreSku(redis, ctx.keys, sku),
    readStoreRegion(redis, ctx.keys, sku, region, day),
    readSourceSku(dbs.inventory, sku),
    readSourceRegion(dbs, region, at),
    sourceBadges(dbs, region, [sku], at),
  ]);
  const storeStock = new Map(store.stock.map((s) => [s.fc, s.value]));
  const online = explainBadge(
    sku,
    { lifecycle: store.lifecycle?.value ?? null, available: (fc) => storeStock.get(fc) },
    storeFcs,
  );
  const srcStock = new Map(src.inventory.map((i) => [i.fc_id, i.available]));
  const lifecycle = src.sku?.lifecycle ?? null;
  const source = explainBadge(sku, { lifecycle, available: (fc) => srcStock.get(fc) }, srcFcs);
  const sameBadge = (a: Badge, b: Badge) => a.reason === b.reason && a.fc === b.fc;
  const differences = compareFacts(online, source);
  if ((store.lifecycle?.value ?? null) !== lifecycle)
    differences.unshift(`lifecycle: store ${store.lifecycle?.value ?? 'none'}, source ${lifecycle ?? 'no row'}`);
  if (!sameBadge(answer, online.badge))
    differences.unshift(`the read path answered ${describeBadge(answer)}: the store changed between the reads`);
  if (!sameBadge(sqlBadge, source.badge))
    differences.unshift(`the SQL rule answered ${describeBadge(sqlBadge)}: the source changed between the reads`);
  return {
    sku,
    region,
    day,
    answer: { ...answer, lagMs: answer.lagMs === null ? null : Math.round(answer.lagMs) },
    online: { ...online, lifecycle: store.lifecycle?.value ?? null, ttl: store.ttl },
    source: { ...source, lifecycle },
    agree: sameBadge(online.badge, source.badge),
    differences,
  };
}

export const describeBadge = (b: Badge) => (b.eligible ? `eligible from ${b.fc}` : b.reason);

/** Lifecycle, and per FC rank, available units, capacity and load, where store and source differ. */
function compareFacts(online: BadgeExplanation, source: BadgeExplanation): string[] {
  const out: string[] = [];
  const onlineFcs = new Map(online.fcs.map((f) => [f.fc, f]));
  const sourceFcs = new Map(source.fcs.map((f) => [f.fc, f]));
  for (const fc of new Set([...onlineFcs.keys(), ...sourceFcs.keys()])) {
    const o = onlineFcs.get(fc);
    const s = sourceFcs.get(fc);
    if (!o || !s) {
      out.push(`${fc} serves the region in the ${o ? 'store' : 'source'} only`);
      continue;
    }
    for (const k of ['rank', 'available', 'capacity', 'load'] as const)
      if (o[k] !== s[k]) out.push(`${fc} ${k}: store ${o[k] ?? 'unknown'}, source ${s[k] ?? 'unknown'}`);
  }
  return out;
}
