/**
 * The badge rule (docs/contracts.md), the one definition: the online read path, the offline
 * export and the reconciliation check all call `decideBadge`. Plain TypeScript, no I/O.
 *
 * For SKU s, region r, at time t (FC load counts the UTC day of t):
 *   available(s, f) = on_hand - reserved (0 when there is no row)
 *   at_capacity(f)  = load(f, day(t)) >= daily_capacity(f)
 *   eligible(s, r)  = lifecycle(s) = active and some FC f of region r has available > 0 and is
 *                     not at capacity; fc = the lowest-rank such FC
 *   reason          = eligible | unknown | discontinued | paused | fc_at_capacity | out_of_stock
 *
 * Choices where the contract is silent: FCs of equal rank are tried in fc id order (a stable
 * answer); an FC whose capacity is unknown counts as at capacity (never promise on a guess).
 */
import type { Lifecycle } from './definitions';

export type Reason = 'eligible' | 'unknown' | 'discontinued' | 'paused' | 'fc_at_capacity' | 'out_of_stock';

export interface Badge {
  sku: string;
  eligible: boolean;
  fc: string | null;
  reason: Reason;
}

/** An FC serving the region, with what the rule needs of it for the day in question. */
export interface RegionFc {
  fc: string;
  rank: number;
  /** null when unknown. */
  capacity: number | null;
  /** Units of placed|shipped orders placed at this FC on the day in question. */
  load: number;
}

export interface SkuFeatures {
  /** null: the store does not know this SKU. */
  lifecycle: Lifecycle | null;
  /** available units per FC id; missing = no inventory row = 0. */
  available: (fc: string) => number | null | undefined;
}

/** Orders the region's FCs as the rule tries them: by rank, then fc id. */
export function rankRegionFcs(fcs: RegionFc[]): RegionFc[] {
  return [...fcs].sort((a, b) => a.rank - b.rank || (a.fc < b.fc ? -1 : a.fc > b.fc ? 1 : 0));
}

/** At capacity unless the load is known to be under it (a value that is not a number promises nothing). */
export function atCapacity(fc: RegionFc): boolean {
  return fc.capacity === null || !(fc.load < fc.capacity);
}

/** `rankedFcs` must already be in rule order (rankRegionFcs). */
export function decideBadge(sku: string, features: SkuFeatures, rankedFcs: RegionFc[]): Badge {
  if (features.lifecycle === null) return { sku, eligible: false, fc: null, reason: 'unknown' };
  if (features.lifecycle === 'discontinued') return { sku, eligible: false, fc: null, reason: 'discontinued' };
  if (features.lifecycle === 'paused') return { sku, eligible: false, fc: null, reason: 'paused' };
  let stockAtFullFc = false;
  for (const fc of rankedFcs) {
    // written so that a value that is not a number counts as no stock
    if (!((features.available(fc.fc) ?? 0) > 0)) continue;
    if (!atCapacity(fc)) return { sku, eligible: true, fc: fc.fc, reason: 'eligible' };
    stockAtFullFc = true;
  }
  return { sku, eligible: false, fc: null, reason: stockAtFullFc ? 'fc_at_capacity' : 'out_of_stock' };
}
