/** What `ops replay --from` and `--since` accept, and where each starts. */
import { describe, expect, it } from 'vitest';
import { MAX_ID, parseReplayFrom, parseSince } from '../../activities/replay/replay-start';

describe('parseReplayFrom', () => {
  it('takes the snapshot `ops status` prints: the position just before its xmin', () => {
    expect(parseReplayFrom('3531875:3531875:').position).toEqual({ txid: '3531874', id: MAX_ID });
    expect(parseReplayFrom('100:105:101,103').position).toEqual({ txid: '99', id: MAX_ID });
    expect(parseReplayFrom('1:1:').position).toEqual({ txid: '0', id: MAX_ID });
    expect(parseReplayFrom('100:105:101').described).toBe('snapshot 100:105:101');
  });
  it('takes TXID:ID and "start" as before', () => {
    expect(parseReplayFrom('812:4711').position).toEqual({ txid: '812', id: '4711' });
    expect(parseReplayFrom('start').position).toEqual({ txid: '0', id: '0' });
  });
  it('refuses anything else, saying what it takes', () => {
    for (const bad of ['yesterday', '12', '1:2:3:4', '105:100:', '100:105:99', '-1:5', ''])
      expect(() => parseReplayFrom(bad), bad).toThrow(/not a position|inconsistent pg_snapshot/);
    expect(() => parseReplayFrom('x')).toThrow(/snapshot XMIN:XMAX:XIP as `ops status` prints it/);
  });
  it('refuses positions beyond the columns (xid8, bigint), which the replay query would fail on forever', () => {
    expect(parseReplayFrom(`18446744073709551615:${MAX_ID}`).position.id).toBe(MAX_ID);
    for (const bad of ['1:9223372036854775808', '18446744073709551616:1', '99999999999999999999:99999999999999999999:'])
      expect(() => parseReplayFrom(bad), bad).toThrow(/at most/);
  });
});

describe('parseSince', () => {
  const now = Date.parse('2026-12-04T14:00:00Z');
  it('a duration back from now', () => {
    expect(parseSince('30m', now).toISOString()).toBe('2026-12-04T13:30:00.000Z');
    expect(parseSince('1h', now).toISOString()).toBe('2026-12-04T13:00:00.000Z');
    expect(parseSince('1h30m', now).toISOString()).toBe('2026-12-04T12:30:00.000Z');
    expect(parseSince('2d', now).toISOString()).toBe('2026-12-02T14:00:00.000Z');
    expect(parseSince('90s', now).toISOString()).toBe('2026-12-04T13:58:30.000Z');
  });
  it('an ISO time, UTC unless it names a zone', () => {
    expect(parseSince('2026-12-04T13:05:00Z', now).toISOString()).toBe('2026-12-04T13:05:00.000Z');
    expect(parseSince('2026-12-04T13:05', now).toISOString()).toBe('2026-12-04T13:05:00.000Z');
    expect(parseSince('2026-12-04 13:05:00', now).toISOString()).toBe('2026-12-04T13:05:00.000Z');
    expect(parseSince('2026-12-04T14:05:00+01:00', now).toISOString()).toBe('2026-12-04T13:05:00.000Z');
    expect(parseSince('2026-12-04', now).toISOString()).toBe('2026-12-04T00:00:00.000Z');
  });
  it('refuses what is not a time, and the future', () => {
    for (const bad of ['yesterday', '1 hour', '-1h', '1y', '2026-13-45T00:00:00Z', '12:00'])
      expect(() => parseSince(bad, now), bad).toThrow(/not a (valid )?time/);
    expect(() => parseSince('2026-12-05T00:00:00Z', now)).toThrow(/in the future/);
  });
});
