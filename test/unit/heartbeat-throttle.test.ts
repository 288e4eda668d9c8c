/**
 * The activities' heartbeat throttle (activities/heartbeat-throttle.ts): the first report goes at
 * once, then at most one per interval, always with the details of the moment it goes; nothing is
 * built for a report that does not go.
 */
import { describe, expect, it } from 'vitest';
import { HEARTBEAT_EVERY_MS, throttledHeartbeat } from '../../activities/heartbeat-throttle';

describe('the heartbeat throttle', () => {
  it('sends the first report, then one per interval with the latest details', () => {
    let now = 1_000;
    const sent: number[] = [];
    let built = 0;
    const beat = throttledHeartbeat<number>(
      (d) => sent.push(d),
      HEARTBEAT_EVERY_MS,
      () => now,
    );
    const report = (n: number) => beat(() => (built++, n));
    report(1);
    for (let i = 2; i <= 40; i++) {
      now += 10; // a pass every 10 ms for 390 ms
      report(i);
    }
    expect(sent).toEqual([1, 26]); // at 0 and at 250 ms
    expect(built).toBe(2);
    now += HEARTBEAT_EVERY_MS;
    report(41);
    expect(sent).toEqual([1, 26, 41]);
  });
});
