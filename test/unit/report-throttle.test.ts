/**
 * The simulator's reports (simulator/report-throttle.ts): at most one every 10 s by default, however
 * often the traffic loop asks, so `npm start -- --simulate` does not bury the worker's lines.
 */
import { describe, expect, it } from 'vitest';
import { REPORT_EVERY_MS, reportThrottle } from '../../simulator/report-throttle';

describe('reportThrottle', () => {
  it('opens at most once every 10 s by default, asked every 50 ms for 24 minutes', () => {
    expect(REPORT_EVERY_MS).toBe(10_000);
    let now = 0;
    const due = reportThrottle(undefined, () => now);
    const at: number[] = [];
    for (now = 0; now <= 24 * 60_000; now += 50) if (due()) at.push(now);
    expect(at.length).toBe(144); // 24 minutes / 10 s, not 1,440 (or the 1,064 of a report a second)
    for (let i = 1; i < at.length; i++) expect(at[i] - at[i - 1]).toBeGreaterThanOrEqual(10_000);
    expect(at[0]).toBe(10_000); // the first after a whole interval, not at once
  });

  it('takes another interval and never opens twice at the same instant', () => {
    let now = 1_000;
    const due = reportThrottle(2_000, () => now);
    expect(due()).toBe(false);
    now = 3_000;
    expect([due(), due(), due()]).toEqual([true, false, false]);
    now = 4_999;
    expect(due()).toBe(false);
    now = 5_000;
    expect(due()).toBe(true);
  });
});
