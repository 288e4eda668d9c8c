import { describe, expect, it } from 'vitest';
import { Lifecycle } from '../../features/definitions';
import { decideBadge, rankRegionFcs, Reason, RegionFc } from '../../features/badge-rule';

const fc = (id: string, rank: number, capacity: number | null, load = 0): RegionFc => ({
  fc: id,
  rank,
  capacity,
  load,
});
const sku = (lifecycle: Lifecycle | null, avail: Record<string, number>) => ({
  lifecycle,
  available: (f: string) => avail[f],
});

// [case, lifecycle, available per FC, region FCs, expected reason, expected fc]
const cases: [string, Lifecycle | null, Record<string, number>, RegionFc[], Reason, string | null][] = [
  ['unknown SKU', null, { A: 5 }, [fc('A', 1, 10)], 'unknown', null],
  ['discontinued wins over stock', 'discontinued', { A: 5 }, [fc('A', 1, 10)], 'discontinued', null],
  ['paused wins over stock', 'paused', { A: 5 }, [fc('A', 1, 10)], 'paused', null],
  ['stock at the nearest FC', 'active', { A: 5, B: 5 }, [fc('A', 1, 10), fc('B', 2, 10)], 'eligible', 'A'],
  ['nearest has none, second has', 'active', { A: 0, B: 3 }, [fc('A', 1, 10), fc('B', 2, 10)], 'eligible', 'B'],
  [
    'nearest at capacity, second free',
    'active',
    { A: 5, B: 1 },
    [fc('A', 1, 10, 10), fc('B', 2, 10, 9)],
    'eligible',
    'B',
  ],
  ['load above capacity counts as at capacity', 'active', { A: 5 }, [fc('A', 1, 10, 12)], 'fc_at_capacity', null],
  ['zero capacity is always at capacity', 'active', { A: 5 }, [fc('A', 1, 0)], 'fc_at_capacity', null],
  ['stock only at full FCs', 'active', { A: 5, B: 0 }, [fc('A', 1, 10, 10), fc('B', 2, 10)], 'fc_at_capacity', null],
  [
    'no stock anywhere, some FC full',
    'active',
    { A: 0, B: 0 },
    [fc('A', 1, 10, 10), fc('B', 2, 10)],
    'out_of_stock',
    null,
  ],
  ['oversold (negative available) is no stock', 'active', { A: -2 }, [fc('A', 1, 10)], 'out_of_stock', null],
  ['no inventory row is no stock', 'active', {}, [fc('A', 1, 10)], 'out_of_stock', null],
  ['stock only outside the region', 'active', { Z: 9 }, [fc('A', 1, 10)], 'out_of_stock', null],
  ['region with no FCs', 'active', { A: 9 }, [], 'out_of_stock', null],
  ['unknown capacity is treated as full', 'active', { A: 9 }, [fc('A', 1, null)], 'fc_at_capacity', null],
  ['rank order, not listing order', 'active', { A: 1, B: 1 }, [fc('B', 2, 10), fc('A', 1, 10)], 'eligible', 'A'],
  ['equal ranks tie-break on fc id', 'active', { B: 1, C: 1 }, [fc('C', 1, 10), fc('B', 1, 10)], 'eligible', 'B'],
  ['equal ranks, lower id full', 'active', { B: 1, C: 1 }, [fc('C', 1, 10), fc('B', 1, 10, 10)], 'eligible', 'C'],
  // a stored value that is not a number (a field some other write took) never promises
  ['stock that is not a number is no stock', 'active', { A: NaN }, [fc('A', 1, 10)], 'out_of_stock', null],
  ['capacity that is not a number is full', 'active', { A: 5 }, [fc('A', 1, NaN)], 'fc_at_capacity', null],
  ['load that is not a number is full', 'active', { A: 5 }, [fc('A', 1, 10, NaN)], 'fc_at_capacity', null],
];

describe('decideBadge', () => {
  it.each(cases)('%s', (_name, lifecycle, avail, fcs, reason, chosen) => {
    const badge = decideBadge('S', sku(lifecycle, avail), rankRegionFcs(fcs));
    expect(badge).toEqual({ sku: 'S', eligible: reason === 'eligible', fc: chosen, reason });
  });
});
