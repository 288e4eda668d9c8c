/**
 * Whether the store's region-level features account for a badge difference (verify's second pass).
 *
 * A badge reads the SKU's own rows (lifecycle, stock per FC) and its region's: which FCs serve it
 * and in what rank, their capacity, their load of the day. Orders move the loads all the time and
 * capacities change, so the store's region-level values are some way behind or ahead of the view
 * the source was read in. Verify checks every one of those values on its own, every run (FCs,
 * regions, loads); a badge difference they cause is theirs: in flight, or reported as their own
 * mismatch. Before, any later order or FC change of the region explained a badge difference away,
 * whatever else was wrong: in a busy region verify could never report a wrong badge.
 *
 * Instead the rule is decided again (features/badge-rule.ts, the one definition) over the view's
 * rows of the SKU and the region's FCs exactly as the store's read found them (one read gives
 * both). When that gives the store's badge, the difference is the region-level values'. When it
 * does not, the SKU's own features in the store differ from the view (or the read does): the
 * badge is a mismatch unless a later change of the SKU's rows explains it. (Read before the
 * outbox's later changes are: a change the drain applied before this read is then among them.)
 * A SKU the store answers `unknown` on purpose (its stock being rebuilt, or held by a dead letter)
 * promises nothing; those have their own work and are not reported here.
 */
import { createBadgeReader, type BadgeReader } from '../serving/badge-reader';
import { type Badge, decideBadge } from '../features/badge-rule';
import type { Lifecycle } from '../features/definitions';
import type { StoreKeys } from '../store/keys';
import { HELD } from '../store/names';
import type { StoreRedis } from '../store/redis-client';
import type { Mismatch } from './compare';
import type { SourceDatabases } from './source-features';

/** Reads of the store's badges as verify compares them: never stale by age, the loads of `at`'s day. */
export function verifyBadgeReader(redis: StoreRedis, keys: StoreKeys, at: Date): BadgeReader {
  return createBadgeReader({
    redis,
    prefix: keys.prefix,
    partitions: keys.partitions.length,
    staleAfterMs: Number.MAX_SAFE_INTEGER,
    now: () => at.getTime(), // the loads of `at`'s day, as the SQL rule counts them (a run may cross midnight)
  });
}

/** A badge as a verify report writes it: "reason" or "reason@fc". */
export const badgeText = (b: Pick<Badge, 'reason' | 'fc'>) => `${b.reason}${b.fc ? `@${b.fc}` : ''}`;

/** The SKU and region of a badge difference's key ("sku@region"). */
const partsOf = (key: string) => {
  const at = key.lastIndexOf('@');
  return { sku: key.slice(0, at), region: key.slice(at + 1) };
};

/**
 * The badge differences ("sku@region" keys) the store's region-level features account for.
 * `source`: the view (the SKUs' rows as the first pass read them).
 */
export async function badgesTheRegionAccountsFor(
  source: SourceDatabases,
  redis: StoreRedis,
  keys: StoreKeys,
  badges: readonly Mismatch[],
  at: Date,
): Promise<Set<string>> {
  const out = new Set<string>();
  if (!badges.length) return out;
  const reader = verifyBadgeReader(redis, keys, at);
  const rows = await skuRows(source, [...new Set(badges.map((m) => partsOf(m.key).sku))]);
  for (const m of badges) {
    const { sku, region } = partsOf(m.key);
    const { badge, fcs } = await reader.badgeWithRegion(region, sku);
    // no promise while the SKU's stock is rebuilt or a dead letter holds it: their own work
    if (badge.reason === 'unknown' && (await rebuildingOrHeld(redis, keys, sku))) {
      out.add(m.key);
      continue;
    }
    const own = rows.get(sku) ?? { lifecycle: null, available: new Map<string, number>() };
    const decided = decideBadge(sku, { lifecycle: own.lifecycle, available: (fc) => own.available.get(fc) }, fcs);
    if (badgeText(decided) === badgeText(badge)) out.add(m.key);
  }
  return out;
}

/**
 * The store answers the SKU `unknown` on purpose: its stock is being rebuilt (store/rebuild-requests.ts)
 * or a waiting dead letter holds it, or everything of its partition (store/held.ts).
 */
async function rebuildingOrHeld(redis: StoreRedis, keys: StoreKeys, sku: string): Promise<boolean> {
  const p = keys.ofSku(sku);
  const [rebuilding, held] = await Promise.all([
    redis.sismember(p.rebuilds, sku),
    redis.hmget(p.held, `${HELD.sku}${sku}`, HELD.all),
  ]);
  return rebuilding === 1 || held.some((v) => v !== null);
}

/** Each SKU's lifecycle and stock per FC, as the view has them (a SKU without a row: none). */
async function skuRows(
  source: SourceDatabases,
  skus: string[],
): Promise<Map<string, { lifecycle: Lifecycle | null; available: Map<string, number> }>> {
  const r = await source.inventory.query<{
    sku: string;
    lifecycle: Lifecycle;
    fcs: string[] | null;
    available: number[] | null;
  }>(
    `select s.sku_id as sku, s.lifecycle,
            array_agg(i.fc_id order by i.fc_id) filter (where i.fc_id is not null) as fcs,
            array_agg(i.on_hand - i.reserved order by i.fc_id) filter (where i.fc_id is not null) as available
       from shop.skus s left join shop.inventory i on i.sku_id = s.sku_id
      where s.sku_id = any($1)
      group by s.sku_id, s.lifecycle`,
    [skus],
  );
  return new Map(
    r.rows.map((row) => [
      row.sku,
      { lifecycle: row.lifecycle, available: new Map((row.fcs ?? []).map((fc, i) => [fc, row.available![i]!])) },
    ]),
  );
}
