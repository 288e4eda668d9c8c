/**
 * Whether a batch target the store claimed can be of PostgreSQL's history as it is now
 * (activities/drain/divergence.ts, historyWentBack): after a failover or a restore that lost the
 * claiming pass's commit, transaction ids are handed out again.
 */
import { describe, expect, it } from 'vitest';
import { historyWentBack } from '../../activities/drain/divergence';

describe('historyWentBack', () => {
  it('is false for this pass’s own proposal and for a claim older than now in the same history', () => {
    expect(historyWentBack('100:110:105', '100:110:105')).toBe(false);
    // 105 ran then and runs still; 112 began after the claim
    expect(historyWentBack('100:110:105', '105:120:105,112')).toBe(false);
    expect(historyWentBack('100:110:', '115:120:')).toBe(false);
  });

  it('is true for a claim past every id handed out now (ids went back)', () => {
    expect(historyWentBack('100:130:', '100:120:')).toBe(true);
  });

  it('is true for a claim that takes a transaction running now for ended (ids handed out again)', () => {
    expect(historyWentBack('110:110:', '105:120:105')).toBe(true); // below its xmin
    expect(historyWentBack('100:110:103', '103:120:103,107')).toBe(true); // 107 ended by its account
  });
});
