/**
 * reconcile/reservoir.ts: verify's badge sample is uniform over every SKU a run checked, so a
 * complete run (SKUs in key order) compares badges across the whole key range, not its start.
 */
import { describe, expect, it } from 'vitest';
import { Reservoir } from '../../reconcile/reservoir';
import { rng } from '../../simulator/traffic';

describe('Reservoir', () => {
  it('keeps everything up to its size, then exactly its size', () => {
    const r = new Reservoir<number>(5);
    for (let i = 0; i < 3; i++) r.offer(i);
    expect(r.items).toEqual([0, 1, 2]);
    for (let i = 3; i < 1000; i++) r.offer(i);
    expect(r.items).toHaveLength(5);
    expect(new Set(r.items).size).toBe(5);
  });

  it('samples the whole stream uniformly: each tenth of 10,000 items holds about a tenth of the picks', () => {
    const random = rng(7);
    const perTenth = new Array<number>(10).fill(0);
    for (let run = 0; run < 200; run++) {
      const r = new Reservoir<number>(50, random);
      for (let i = 0; i < 10_000; i++) r.offer(i);
      for (const i of r.items) perTenth[Math.floor(i / 1000)]!++;
    }
    // 10,000 picks: 1,000 expected per tenth (a first-come sample would put all of them in the first)
    for (const n of perTenth) expect(n).toBeGreaterThan(850);
    for (const n of perTenth) expect(n).toBeLessThan(1150);
  });
});
