/**
 * Verify checks badges in at most BADGE_REGIONS regions a run (reconcile/verify.ts): a random
 * choice each run, so that runs after runs check every region, not the first 50 by name for ever.
 */
import { describe, expect, it } from 'vitest';
import { badgeRegions, BADGE_REGIONS } from '../../reconcile/verify';
import { seedCatalogue } from '../../simulator/catalogue';
import { usePipeline } from '../support/pipeline-fixture';

const { c } = usePipeline('verify-regions', { reset: true });

describe('the regions verify checks badges in', () => {
  it('are at most BADGE_REGIONS a run, and every region within a few runs', async () => {
    const regions = BADGE_REGIONS + 20;
    await seedCatalogue(c.pool, { skus: 10, fcs: regions, regions, fcsPerRegion: 1, fcsPerSku: 1 });
    const all = (await c.pool.query(`select distinct region from shop.region_fc`)).rows.map((r) => r.region);
    expect(all).toHaveLength(regions);
    const seen = new Set<string>();
    for (let run = 0; run < 30; run++) {
      const chosen = await badgeRegions(c.pool);
      expect(chosen).toHaveLength(BADGE_REGIONS);
      expect(new Set(chosen).size).toBe(BADGE_REGIONS);
      chosen.forEach((r) => seen.add(r));
    }
    // (a region left out of all 30 runs: (20/70)^30, about 2e-17, each)
    expect([...seen].sort()).toEqual([...all].sort());
  });
});
