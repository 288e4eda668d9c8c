import { describe, expect, it } from 'vitest';
import { stamp } from '../../scripts/ops/context';

describe('operator workflow ids (stamp)', () => {
  it('say the time, and differ for commands started in the same second', () => {
    const now = new Date('2026-11-25T16:01:02.345Z');
    const a = stamp(now);
    const b = stamp(now);
    expect(a).toMatch(/^20261125T160102Z-[0-9a-f]{6}$/);
    // two `ops dead-letters retry` run together got one id, and the second could not start
    expect(a).not.toBe(b);
  });
});
