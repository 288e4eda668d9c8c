/** The explanation of a badge names the step of the rule that decided, and agrees with decideBadge. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { explainBadge } from '../../features/badge-explain';
import { decideBadge, rankRegionFcs, type RegionFc } from '../../features/badge-rule';
import type { Lifecycle } from '../../features/definitions';

const fcs: RegionFc[] = [
  { fc: 'FC-3', rank: 3, capacity: 50, load: 0 },
  { fc: 'FC-1', rank: 1, capacity: 2, load: 2 },
  { fc: 'FC-2', rank: 2, capacity: null, load: 0 },
];
const stock = (m: Record<string, number>) => (fc: string) => m[fc];

describe('explainBadge', () => {
  it('walks the FCs in rank order and marks what the rule made of each', () => {
    const e = explainBadge('S', { lifecycle: 'active', available: stock({ 'FC-1': 5, 'FC-2': 1, 'FC-3': 4 }) }, fcs);
    expect(e.badge).toEqual({ sku: 'S', eligible: true, fc: 'FC-3', reason: 'eligible' });
    expect(e.fcs.map((f) => [f.fc, f.verdict])).toEqual([
      ['FC-1', 'at capacity'],
      ['FC-2', 'capacity unknown'],
      ['FC-3', 'chosen'],
    ]);
    expect(e.rule).toBe(
      'eligible: lifecycle active, and FC-3 (rank 3) is the first FC in rank order with stock (4 available) and room today (load 0 < capacity 50)',
    );
  });

  it('FCs after the chosen one are not tried; a lifecycle that decides leaves every FC untried', () => {
    const e = explainBadge('S', { lifecycle: 'active', available: stock({ 'FC-1': 1, 'FC-3': 1 }) }, [
      { fc: 'FC-1', rank: 1, capacity: 9, load: 0 },
      { fc: 'FC-3', rank: 2, capacity: 9, load: 0 },
    ]);
    expect(e.fcs.map((f) => f.verdict)).toEqual(['chosen', 'not tried']);
    const paused = explainBadge('S', { lifecycle: 'paused', available: stock({ 'FC-1': 5 }) }, fcs);
    expect(paused.rule).toMatch(/^paused: /);
    expect(paused.fcs.every((f) => f.verdict === 'not tried')).toBe(true);
  });

  it('names the full FCs for fc_at_capacity, and says out_of_stock when no FC has units', () => {
    const full = explainBadge('S', { lifecycle: 'active', available: stock({ 'FC-1': 5 }) }, fcs);
    expect(full.rule).toMatch(/^fc_at_capacity: .*\(FC-1 load 2 of 2\)/);
    const none = explainBadge('S', { lifecycle: 'active', available: stock({}) }, fcs);
    expect(none.rule).toMatch(/^out_of_stock: /);
    expect(explainBadge('S', { lifecycle: null, available: stock({}) }, fcs).rule).toMatch(/^unknown: /);
  });

  it('always gives decideBadge’s answer (property)', () => {
    const lifecycle = fc.constantFrom<Lifecycle | null>('active', 'paused', 'discontinued', null);
    const regionFc = fc.record({
      fc: fc.constantFrom('A', 'B', 'C', 'D'),
      rank: fc.integer({ min: 0, max: 3 }),
      // NaN: a stored value that is not a number, which neither may promise on
      capacity: fc.option(fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constant(NaN))),
      load: fc.oneof(fc.integer({ min: 0, max: 4 }), fc.constant(NaN)),
    });
    fc.assert(
      fc.property(
        lifecycle,
        fc.uniqueArray(regionFc, { selector: (f) => f.fc }),
        fc.dictionary(fc.constantFrom('A', 'B', 'C', 'D'), fc.oneof(fc.integer({ min: -1, max: 2 }), fc.constant(NaN))),
        (l, region, units) => {
          const features = { lifecycle: l, available: (f: string) => units[f] };
          const e = explainBadge('S', features, region);
          expect(e.badge).toEqual(decideBadge('S', features, rankRegionFcs(region)));
          expect(e.fcs.filter((f) => f.verdict === 'chosen').map((f) => f.fc)).toEqual(e.badge.fc ? [e.badge.fc] : []);
          expect(e.rule.startsWith(`${e.badge.reason}:`)).toBe(true);
        },
      ),
    );
  });
});
