/**
 * The age of a drain target's time (activities/drain/after-commit.ts): what the caught-up time
 * written on Redis's clock is measured with. Never shorter than the truth; unknown when the
 * pipeline database's clock went back since the time was read.
 */
import { describe, expect, it } from 'vitest';
import { ageOf } from '../../activities/drain/after-commit';

describe('a target time’s age', () => {
  it('is the database clock’s difference plus the monotonic time since the pass began', () => {
    const t0 = performance.now() - 50;
    const age = ageOf(1_000_000, 1_000_200, t0)!;
    expect(age).toBeGreaterThanOrEqual(250);
    expect(age).toBeLessThan(250 + 5_000);
  });

  it('is unknown (nothing confirmed) for a time later than the database’s now: its clock went back', () => {
    expect(ageOf(1_000_001, 1_000_000, performance.now())).toBeNull();
    expect(ageOf(1_000_000 + 3_600_000, 1_000_000, performance.now())).toBeNull();
  });
});
