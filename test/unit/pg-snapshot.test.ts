import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatSnapshot, parseSnapshot, snapshotCovers, visibleIn } from '../../db/pg-snapshot';

describe('pg_snapshot values', () => {
  it('parses the text form and applies PostgreSQL visibility', () => {
    const s = parseSnapshot('100:110:104,101');
    expect(s.xip).toEqual([101n, 104n]);
    expect(formatSnapshot(s)).toBe('100:110:101,104');
    expect([99n, 100n, 101n, 104n, 105n, 109n, 110n].map((x) => visibleIn(s, x))).toEqual([
      true,
      true,
      false,
      false,
      true,
      true,
      false,
    ]);
  });

  it('rejects malformed and inconsistent text', () => {
    for (const bad of ['', '1:2', 'a:b:', '5:3:', '3:5:7', '3:5:2', '1:2:,'])
      expect(() => parseSnapshot(bad)).toThrow(/pg_snapshot/);
  });

  it('a later snapshot covers an earlier one; a lagging one does not', () => {
    const earlier = parseSnapshot('100:110:104');
    expect(snapshotCovers(parseSnapshot('104:120:104,115'), earlier)).toBe(true); // 104 still open: fine
    expect(snapshotCovers(parseSnapshot('100:105:'), earlier)).toBe(false); // behind (xmax)
    expect(snapshotCovers(parseSnapshot('100:112:105'), earlier)).toBe(false); // 105 was visible, now in progress
  });

  it('matches the definition for any snapshot and txid (binary search = linear scan)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 3, max: 1000 }),
        fc.nat(50),
        fc.array(fc.nat(49)),
        fc.nat(1100),
        (xmin, span, ips, t) => {
          const xmax = xmin + span;
          const xip = [...new Set(ips.filter((x) => x < span).map((x) => BigInt(xmin + x)))];
          const s = parseSnapshot(`${xmin}:${xmax}:${xip.join(',')}`);
          const tx = BigInt(t);
          const expected = tx < BigInt(xmin) || (tx < BigInt(xmax) && !xip.includes(tx));
          expect(visibleIn(s, tx)).toBe(expected);
        },
      ),
    );
  });
});
