/** When the planner's statistics can give a backfill's row count, and when the table must be counted. */
import { describe, expect, it } from 'vitest';
import { plannerEstimate } from '../../activities/backfill/row-estimate';

describe('plannerEstimate', () => {
  it('a table never analysed (reltuples -1) is counted', () => {
    expect(plannerEstimate({ reltuples: -1, relpages: 0, pagesNow: 40 })).toBeNull();
  });
  it('a table analysed while empty that holds pages now is counted', () => {
    expect(plannerEstimate({ reltuples: 0, relpages: 0, pagesNow: 40 })).toBeNull();
    expect(plannerEstimate({ reltuples: 0, relpages: 3, pagesNow: 40 })).toBeNull();
  });
  it('no page: no row, whatever the statistics say (emptied since)', () => {
    expect(plannerEstimate({ reltuples: 1000, relpages: 5, pagesNow: 0 })).toBe(0);
    expect(plannerEstimate({ reltuples: -1, relpages: 0, pagesNow: 0 })).toBe(0);
  });
  it('otherwise the density when analysed times the pages now, as the planner scales it', () => {
    expect(plannerEstimate({ reltuples: 1000, relpages: 5, pagesNow: 50 })).toBe(10_000);
  });
});
