import { describe, expect, it } from 'vitest';
import { dayBefore, placedDay, RANK_NULL, utcDay } from '../../features/definitions';
import { featureUpdatesFrom, MalformedChange, OutboxRow } from '../../features/from-source';

const row = (over: Partial<OutboxRow>): OutboxRow => ({
  id: '10',
  txid: '700',
  tbl: 'skus',
  op: 'I',
  key: 'k',
  image: null,
  old_image: null,
  created_ms: Date.now(),
  ...over,
});
const order = (o: Record<string, unknown>) => ({
  order_id: 1,
  sku_id: 'S1',
  fc_id: 'F1',
  qty: 2,
  status: 'placed',
  placed_at: '2026-11-25T15:19:15.339058+00:00',
  ...o,
});

describe('featureUpdatesFrom', () => {
  // An order's fc_id is not checked (the contract): its load counts under whatever it names, so a
  // refill's load set of that FC must be taken too. Refused, it was dead-lettered, and when it was
  // the refill's last set it carried the completeness, holding every partition stale.
  it('takes a load set of any FC an order can name, as the order itself is counted', () => {
    for (const fc of ['FC 1', 'Köln', 'a{b}', '', 'x'.repeat(200)]) {
      const counted = featureUpdatesFrom(row({ tbl: 'orders', image: order({ fc_id: fc }) }));
      expect(counted).toMatchObject([{ fc }]);
      const image = { fc_id: fc, day: '20261203', load: 5, complete_from: '20261201' };
      expect(featureUpdatesFrom(row({ tbl: 'orders', op: 'S', key: `${fc}|20261203`, image }))).toEqual([
        { feature: 'fc.loadSet', fc, day: '20261203', value: 5, txid: '700', id: 10, completeFrom: '20261201' },
      ]);
    }
  });

  it('maps each table to its feature, versioned by the outbox id', () => {
    expect(featureUpdatesFrom(row({ tbl: 'skus', image: { sku_id: 'S1', title: 't', lifecycle: 'paused' } }))).toEqual([
      { feature: 'sku.lifecycle', sku: 'S1', value: 'paused', version: 10, txid: '700', insert: true },
    ]);
    expect(
      featureUpdatesFrom(
        row({ tbl: 'inventory', op: 'U', image: { sku_id: 'S1', fc_id: 'F1', on_hand: 5, reserved: 7 } }),
      ),
    ).toEqual([{ feature: 'sku.available', sku: 'S1', fc: 'F1', value: -2, version: 10, txid: '700' }]);
    expect(
      featureUpdatesFrom(row({ tbl: 'fulfillment_centers', image: { fc_id: 'F1', region: 'R', daily_capacity: 0 } })),
    ).toEqual([{ feature: 'fc.capacity', fc: 'F1', value: 0, version: 10, txid: '700' }]);
    expect(featureUpdatesFrom(row({ tbl: 'region_fc', image: { region: 'R', fc_id: 'F1', rank: 2 } }))).toEqual([
      { feature: 'region.rank', region: 'R', fc: 'F1', value: 2, version: 10, txid: '700' },
    ]);
    expect(
      featureUpdatesFrom(row({ tbl: 'region_fc', image: { region: 'R', fc_id: 'F1', rank: null } }))[0],
    ).toMatchObject({ value: RANK_NULL });
  });

  it('takes every id of the contract: 1 to 128 of letters, digits and . _ : -, numbers-like ones too', () => {
    for (const id of ['S'.repeat(128), '007', '1e3', '-0', '.', '_', '__proto__', 'a:b.c_d-e'])
      expect(featureUpdatesFrom(row({ image: { sku_id: id, lifecycle: 'active' } }))).toEqual([
        expect.objectContaining({ feature: 'sku.lifecycle', sku: id }),
      ]);
  });

  it('applies a refresh (R) like an update', () => {
    expect(
      featureUpdatesFrom(
        row({ tbl: 'inventory', op: 'R', image: { sku_id: 'S1', fc_id: 'F1', on_hand: 4, reserved: 1 } }),
      ),
    ).toEqual([{ feature: 'sku.available', sku: 'S1', fc: 'F1', value: 3, version: 10, txid: '700' }]);
  });

  it('turns deletes into tombstones (value null) that keep the version', () => {
    for (const [tbl, image, feature] of [
      ['skus', { sku_id: 'S1' }, 'sku.lifecycle'],
      ['inventory', { sku_id: 'S1', fc_id: 'F1' }, 'sku.available'],
      ['fulfillment_centers', { fc_id: 'F1' }, 'fc.capacity'],
      ['region_fc', { region: 'R', fc_id: 'F1' }, 'region.rank'],
    ] as const) {
      expect(featureUpdatesFrom(row({ tbl, op: 'D', image }))).toEqual([
        expect.objectContaining({ feature, value: null, version: 10 }),
      ]);
    }
  });

  it('turns order changes into load deltas on the UTC day the order was placed', () => {
    const pos = { txid: '700', id: 10 };
    expect(featureUpdatesFrom(row({ tbl: 'orders', image: order({}) }))).toEqual([
      { feature: 'fc.load', fc: 'F1', day: '20261125', delta: 2, ...pos },
    ]);
    // placed -> shipped: still counted, no change
    expect(
      featureUpdatesFrom(row({ tbl: 'orders', op: 'U', image: order({ status: 'shipped' }), old_image: order({}) })),
    ).toEqual([]);
    // placed -> cancelled: released
    expect(
      featureUpdatesFrom(row({ tbl: 'orders', op: 'U', image: order({ status: 'cancelled' }), old_image: order({}) })),
    ).toEqual([{ feature: 'fc.load', fc: 'F1', day: '20261125', delta: -2, ...pos }]);
    // moved to another FC and quantity changed
    expect(
      featureUpdatesFrom(row({ tbl: 'orders', op: 'U', image: order({ fc_id: 'F2', qty: 5 }), old_image: order({}) })),
    ).toEqual([
      { feature: 'fc.load', fc: 'F1', day: '20261125', delta: -2, ...pos },
      { feature: 'fc.load', fc: 'F2', day: '20261125', delta: 5, ...pos },
    ]);
    // deleted shipped order
    expect(featureUpdatesFrom(row({ tbl: 'orders', op: 'D', image: order({ status: 'shipped' }) }))).toEqual([
      { feature: 'fc.load', fc: 'F1', day: '20261125', delta: -2, ...pos },
    ]);
    // the day is the UTC day, whatever the offset the timestamp was written with
    expect(
      featureUpdatesFrom(row({ tbl: 'orders', image: order({ placed_at: '2026-11-25T23:30:00-02:00' }) }))[0],
    ).toMatchObject({ day: '20261126' });
    // nothing counted: cancelled insert, null FC, null qty
    expect(featureUpdatesFrom(row({ tbl: 'orders', image: order({ status: 'cancelled' }) }))).toEqual([]);
    expect(featureUpdatesFrom(row({ tbl: 'orders', image: order({ fc_id: null }) }))).toEqual([]);
    expect(featureUpdatesFrom(row({ tbl: 'orders', image: order({ qty: null }) }))).toEqual([]);
  });

  it('rejects what does not fit the source contract with a message naming the problem', () => {
    const bad: [Partial<OutboxRow>, RegExp][] = [
      [{ tbl: 'skus', image: { sku_id: 'S1', lifecycle: 'gone' } }, /lifecycle/],
      [{ tbl: 'skus', image: null }, /skus I k/],
      [{ tbl: 'inventory', image: { sku_id: 'S1', fc_id: 'F1', on_hand: -1, reserved: 0 } }, /on_hand/],
      [{ tbl: 'inventory', image: { sku_id: 'S1', fc_id: 'F1', on_hand: '5', reserved: 0 } }, /on_hand/],
      [{ tbl: 'fulfillment_centers', image: { fc_id: 'F1', daily_capacity: 1.5 } }, /daily_capacity/],
      [{ tbl: 'orders', op: 'U', image: order({}), old_image: null }, /before-image/],
      [{ tbl: 'orders', image: order({ placed_at: 'yesterday' }) }, /placed_at/],
      [{ tbl: 'nope', image: {} }, /unknown source table/],
      [{ op: 'X', image: {} }, /unknown operation/],
      [{ op: 'T' }, /TRUNCATE.*not a row change/],
      // a TRUNCATE of a table outside the contract: malformed, not a TRUNCATE the drain applies
      [{ tbl: 'warehouses', op: 'T' }, /TRUNCATE of unknown source table 'warehouses'/],
      [{ tbl: 'constructor', op: 'T' }, /TRUNCATE of unknown source table 'constructor'/],
      [{ tbl: 'orders', op: 'R', image: order({}) }, /cannot be refreshed/],
      [{ id: 'abc', image: { sku_id: 'S1', lifecycle: 'active' } }, /outbox id/],
      // ids outside the contract's characters: '#' is the SKU hash's lifecycle field, so an FC of
      // that id would have its stock read as the lifecycle
      [{ tbl: 'fulfillment_centers', image: { fc_id: '#', daily_capacity: 100 } }, /fc_id.*letters, digits/],
      [{ tbl: 'region_fc', image: { region: 'R1', fc_id: '#', rank: 1 } }, /fc_id/],
      [{ tbl: 'inventory', image: { sku_id: 'S1', fc_id: '#', on_hand: 5, reserved: 0 } }, /fc_id/],
      [{ tbl: 'skus', image: { sku_id: 'a b', lifecycle: 'active' } }, /sku_id/],
      [{ tbl: 'skus', image: { sku_id: 'S'.repeat(129), lifecycle: 'active' } }, /sku_id/],
      [{ tbl: 'region_fc', op: 'D', image: { region: 'R|1', fc_id: 'F1' } }, /region/],
    ];
    for (const [over, message] of bad) {
      expect(() => featureUpdatesFrom(row(over))).toThrow(MalformedChange);
      expect(() => featureUpdatesFrom(row(over))).toThrow(message);
    }
  });

  it('an order image on no countable day adds nothing, and the other image still applies (issue 21.3)', () => {
    // a draft placed at 'infinity', then placed now: today's +qty counts
    for (const never of ['infinity', '-infinity', '0044-03-15T12:00:00+00:00 BC', '294276-01-01T00:00:00+00:00'])
      expect(
        featureUpdatesFrom(row({ tbl: 'orders', op: 'U', image: order({}), old_image: order({ placed_at: never }) })),
      ).toEqual([{ feature: 'fc.load', fc: 'F1', day: '20261125', delta: 2, txid: '700', id: 10 }]);
    // and deleted from there: nothing
    expect(featureUpdatesFrom(row({ tbl: 'orders', op: 'D', image: order({ placed_at: 'infinity' }) }))).toEqual([]);
    // dates JavaScript's ISO parser does not take, but PostgreSQL writes
    const day = (placed_at: string) => {
      const [u] = featureUpdatesFrom(row({ tbl: 'orders', image: order({ placed_at }) }));
      return u?.feature === 'fc.load' ? u.day : null;
    };
    expect(day('0044-03-15T12:00:00+00:00')).toBe('00440315');
    expect(day('0001-01-01T00:00:00+00:00')).toBe('00010101');
    expect(day('12345-06-07T23:30:00-01:00')).toBe('123450608');
    expect(day('1890-01-01T00:10:00+00:53:28')).toBe('18891231');
    // the last day a Date reaches holds one millisecond of it: on no day, as in SQL (PLACED_ON_A_DAY_SQL)
    expect(day('275760-09-12T23:59:59.999999+00:00')).toBe('2757600912');
    expect(day('275760-09-13T00:00:00+00:00')).toBe(null);
    expect(day('275760-09-13T01:00:00+01:00')).toBe(null);
    expect(day('275760-09-14T00:00:00+00:00')).toBe(null);
  });

  it('an impossible placed_at is a malformed change, never a load on the day a Date rolls it over to', () => {
    // JavaScript's Date takes 30 February as 2 March and 25:00 as the next day's 01:00; PostgreSQL
    // writes neither, so such an image was written by hand or by a buggy writer
    const impossible: [string, RegExp][] = [
      ['2026-02-30T10:00:00Z', /day 30 of a month of 28 days/],
      ['2026-02-30T10:00:00+00:00', /day 30/],
      ['2026-02-29T10:00:00+00:00', /day 29 of a month of 28 days/], // not a leap year
      ['2100-02-29T10:00:00+00:00', /day 29/], // nor is a century not divisible by 400
      ['2026-04-31T10:00:00+00:00', /day 31 of a month of 30 days/],
      ['2026-01-00T10:00:00+00:00', /day 0/],
      ['2026-13-01T10:00:00+00:00', /month 13/],
      ['2026-00-10T10:00:00+00:00', /month 0/],
      ['2026-01-01T25:00:00+00:00', /hour 25/],
      ['2026-01-01T24:00:00+00:00', /hour 24/], // PostgreSQL takes 24:00:00 in, and writes the next day's 00:00:00
      ['2026-01-01 24:00:00+00', /hour 24/],
      ['2026-01-01T23:60:00+00:00', /minute 60/],
      ['2026-01-01T23:59:60+00:00', /second 60/], // a leap second: written as the next minute
      ['2026-01-01T10:00:00+05:60', /offset/],
      ['2026-01-01T10:00:00+168:00', /offset/], // PostgreSQL's zones end at 167 hours
      ['1890-01-01T00:10:00+00:53:60', /offset/],
      ['0000-12-31T23:00:00-02:00', /year 0/], // no year 0: 1 BC is followed by AD 1
      ['0000-06-01T00:00:00+00:00 BC', /year 0/],
      ['0002-02-29T00:00:00+00:00 BC', /day 29/], // 2 BC is not a leap year (1 BC and 5 BC are)
      ['12345-02-30T00:00:00+00:00', /day 30/],
      ['2026-01-01T10:00:00', /not yyyy-mm-dd/], // no offset: no instant
      ['2026-01-01T10:00:00.1234567+00:00', /not yyyy-mm-dd/], // past microseconds
    ];
    for (const [placed_at, why] of impossible) {
      for (const over of [
        { image: order({ placed_at }) },
        { op: 'U', image: order({}), old_image: order({ placed_at }) },
        { op: 'D', image: order({ placed_at }) },
      ]) {
        const change = row({ tbl: 'orders', ...over });
        expect(() => featureUpdatesFrom(change), placed_at).toThrow(MalformedChange);
        expect(() => featureUpdatesFrom(change), placed_at).toThrow(/placed_at: not a timestamp PostgreSQL writes/);
        expect(() => featureUpdatesFrom(change), placed_at).toThrow(why);
      }
    }
  });

  it('takes every shape of timestamp PostgreSQL writes, on its UTC day', () => {
    const valid: [string, string | null][] = [
      ['2024-02-29T10:00:00+00:00', '20240229'],
      ['2000-02-29T23:30:00-01:00', '20000301'],
      ['2026-12-31T23:59:59.999999+00:00', '20261231'],
      ['2026-01-01T10:00:00.5Z', '20260101'],
      ['2026-01-01 00:30:00+01', '20251231'], // the text output
      ['2026-03-01T00:00:00+0530', '20260228'],
      ['2026-01-31T23:59:59+23:59', '20260131'],
      // a POSIX TimeZone ('<+167>-167', '<-25:30>+25:30'): offsets past a day, up to 167 hours
      ['2026-01-08T09:00:00+167:00', '20260101'],
      ['2025-12-31T08:30:00-25:30', '20260101'],
      ['1890-01-01T00:10:00+00:53:28', '18891231'],
      ['12344-02-29T23:30:00-01:00', '123440301'],
      ['0001-01-01T00:30:00+01:00', null], // 31 December 1 BC in UTC
      ['0001-02-29T12:00:00+00:00 BC', null], // 1 BC is a leap year: a valid date, on no day the rule counts
      ['0005-02-29T12:00:00+00:00 BC', null],
      ['294277-01-07T22:00:00+167:00', null], // PostgreSQL writes it under '<+167>-167'
    ];
    for (const [placed_at, day] of valid) expect(placedDay(placed_at), placed_at).toBe(day);
  });

  it('formats the UTC day as yyyymmdd', () => {
    expect(utcDay(new Date('0044-03-15T00:00:00Z'))).toBe('00440315');
    expect(utcDay(new Date('2026-01-05T00:00:00Z'))).toBe('20260105');
    expect(utcDay(new Date('2026-12-31T23:59:59.999Z'))).toBe('20261231');
  });

  it('orders days by date, not as text (years of five digits and more)', () => {
    expect(dayBefore('20261230', '20261231')).toBe(true);
    expect(dayBefore('20261231', '20261231')).toBe(false);
    expect(dayBefore('99991231', '100000101')).toBe(true);
    expect(dayBefore('100000101', '99991231')).toBe(false);
  });
});
