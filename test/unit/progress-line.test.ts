/** The progress line of `ops backfill` / `ops replay`: never a total below the rows done. */
import { describe, expect, it } from 'vitest';
import { progressLine } from '../../scripts/ops/progress';

describe('progressLine', () => {
  it('an estimate of 0 (a table never analysed) says "estimating", not 100% and ETA 0s', () => {
    const line = progressLine({ label: 'backfill skus', value: 5030, total: 0, rate: 800 });
    expect(line).toMatch(/estimating \| 5030 rows so far \| 800 rows\/s \| ETA estimating/);
    expect(line).not.toMatch(/100%|\/0 rows|ETA 0s/);
  });

  it('an estimate the rows have passed is not shown as a total below them', () => {
    const line = progressLine({ label: 'backfill', value: 1200, total: 1000, rate: 100 });
    expect(line).toMatch(/estimating/);
    expect(line).not.toMatch(/1200\/1000/);
  });

  it('a known total: percentage, rows of total, rate and ETA', () => {
    expect(progressLine({ label: 'replay', value: 250, total: 1000, rate: 50 })).toMatch(
      /^replay \|█{8}░{22}\| 25% \| 250\/1000 rows \| 50 rows\/s \| ETA 15s$/,
    );
    expect(progressLine({ label: 'x', value: 0, total: 100_000, rate: 10 })).toMatch(/ETA 2h46m$/);
    expect(progressLine({ label: 'x', value: 0, total: 10, rate: 0 })).toMatch(/ETA -$/);
  });

  it('the finished frame is 100% with ETA 0s', () => {
    expect(progressLine({ label: 'backfill', value: 5030, total: 5030, rate: 900, done: true })).toMatch(
      /100% \| 5030\/5030 rows \| 900 rows\/s \| ETA 0s$/,
    );
  });
});
