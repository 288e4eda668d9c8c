/**
 * Why the badge rule (badge-rule.ts) decided what it decided, for a person (`ops explain`): which
 * step of the rule settled it, and what the rule made of each FC of the region in the order it
 * tries them. The badge itself comes from `decideBadge`, the one definition; this only narrates
 * it, so an explanation can never disagree with an answer.
 */
import { atCapacity, Badge, decideBadge, rankRegionFcs, RegionFc, SkuFeatures } from './badge-rule';
import { RANK_NULL } from './definitions';

/** What the rule made of one FC: the one it chose, why it passed over it, or never looked at it. */
export type FcVerdict = 'chosen' | 'no stock' | 'at capacity' | 'capacity unknown' | 'not tried';

export interface ExplainedFc extends RegionFc {
  available: number;
  verdict: FcVerdict;
}

export interface BadgeExplanation {
  badge: Badge;
  /** The region's FCs in the order the rule tries them. */
  fcs: ExplainedFc[];
  /** One sentence: the step of the rule that decided. */
  rule: string;
}

const rankText = (rank: number) => (rank === RANK_NULL ? 'no rank' : `rank ${rank}`);

function verdictOf(fc: RegionFc, available: number, decided: boolean): FcVerdict {
  if (decided) return 'not tried';
  if (!(available > 0)) return 'no stock'; // as the rule: a value that is not a number is no stock
  if (atCapacity(fc)) return fc.capacity === null ? 'capacity unknown' : 'at capacity';
  return 'chosen';
}

/** The rule's decision over these features and FCs (any order), with the reasons. */
export function explainBadge(sku: string, features: SkuFeatures, fcs: RegionFc[]): BadgeExplanation {
  const ranked = rankRegionFcs(fcs);
  const badge = decideBadge(sku, features, ranked);
  const lifecycleDecided = badge.reason === 'unknown' || badge.reason === 'discontinued' || badge.reason === 'paused';
  let decided = lifecycleDecided;
  const explained = ranked.map((fc): ExplainedFc => {
    const available = features.available(fc.fc) ?? 0;
    const verdict = verdictOf(fc, available, decided);
    if (verdict === 'chosen') decided = true;
    return { ...fc, available, verdict };
  });
  return { badge, fcs: explained, rule: ruleSentence(badge, explained, features) };
}

function ruleSentence(badge: Badge, fcs: ExplainedFc[], features: SkuFeatures): string {
  switch (badge.reason) {
    case 'unknown':
      return 'unknown: no lifecycle is known for this SKU (never seen, or deleted), so nothing is promised';
    case 'discontinued':
      return 'discontinued: the lifecycle is discontinued, so the FCs are not looked at';
    case 'paused':
      return 'paused: the lifecycle is paused, so the FCs are not looked at';
    case 'eligible': {
      const fc = fcs.find((f) => f.verdict === 'chosen')!;
      return `eligible: lifecycle active, and ${fc.fc} (${rankText(fc.rank)}) is the first FC in rank order with stock (${fc.available} available) and room today (load ${fc.load} < capacity ${fc.capacity})`;
    }
    case 'fc_at_capacity': {
      const full = fcs.filter((f) => f.verdict === 'at capacity' || f.verdict === 'capacity unknown');
      const list = full
        .map((f) => `${f.fc} ${f.capacity === null ? 'capacity unknown' : `load ${f.load} of ${f.capacity}`}`)
        .join(', ');
      const unknown = full.some((f) => f.capacity === null) ? '; an unknown capacity counts as full' : '';
      return `fc_at_capacity: lifecycle active, but every FC with stock has reached its capacity today (${list})${unknown}`;
    }
    case 'out_of_stock':
      return `out_of_stock: lifecycle ${features.lifecycle}, but no FC of the region has units available${fcs.length ? '' : ' (the region has no FC)'}`;
  }
}
