/**
 * The watermark windows (capture/watermark-windows.ts) and a chunk's outbox rows
 * (capture/chunk-rows.ts), as pure logic: which keys a chunk read in a snapshot must leave out.
 */
import { describe, expect, it } from 'vitest';
import { rowsOfChunk } from '../../capture/chunk-rows';
import { featureUpdatesFrom } from '../../features/from-source';
import {
  CHANGES_MS,
  HISTORY_MS,
  HistoryTooShortError,
  rowKey,
  HORIZON_MS,
  PIN_MAX_MS,
  truncateKey,
  WatermarkWindows,
  widenXid,
  type TransactionChanges,
} from '../../capture/watermark-windows';

/** A transaction's changes as the windows take them; counts how often its keys were worked out. */
const tx = (...keys: string[]): TransactionChanges & { asked: number } => {
  const c = {
    asked: 0,
    keys: () => {
      c.asked++;
      return keys;
    },
    orders: () => [],
  };
  return c;
};
import type { StoredChunk } from '../../outbox/capture-chunks';

describe('watermark windows', () => {
  it('leaves out keys changed between the watermarks, and before them by a transaction the snapshot did not see', () => {
    const w = new WatermarkWindows();
    const a = tx(rowKey('inventory', 'A|F1'));
    w.see(100, a, 0); // visible in the snapshot below: kept
    w.see(105, tx(rowKey('inventory', 'B|F1')), 1); // committed before LW, still in progress in the snapshot
    w.low('7');
    w.see(110, tx(rowKey('inventory', 'C|F1')), 2); // in the window
    const closed = w.close('7')!;
    w.see(120, tx(rowKey('inventory', 'D|F1')), 3); // after the high watermark: not this chunk's business
    const out = w.excluded(closed, '101:121:105,110');
    expect([...out].sort()).toEqual([rowKey('inventory', 'B|F1'), rowKey('inventory', 'C|F1')]);
    expect(a.asked).toBe(0); // keys are worked out only for what a chunk needs
  });

  it('abandons a chunk when a transaction its snapshot did not see is older than the changes kept', () => {
    const w = new WatermarkWindows();
    w.see(105, tx(rowKey('inventory', 'B|F1')), 0); // not visible in the snapshot below
    w.see(106, tx(rowKey('inventory', 'C|F1')), 1); // visible
    w.see(107, tx(rowKey('inventory', 'E|F1')), CHANGES_MS + 10); // the first's changes are forgotten now
    w.low('9', CHANGES_MS + 10);
    w.see(108, tx(rowKey('inventory', 'D|F1')), CHANGES_MS + 11);
    const closed = w.close('9')!;
    expect(() => w.excluded(closed, '105:109:105,107')).toThrow(HistoryTooShortError);
    // a snapshot that saw it needs nothing forgotten
    expect([...w.excluded(closed, '109:109:')]).toEqual([rowKey('inventory', 'D|F1')]);
  });

  // The chunk is worked out when its batch is written, which can be after a write in flight, and
  // a read can take long (the load sums of a big orders table): the stream goes on meanwhile. The
  // window holds the history it had at its low watermark until its chunk is released, and no longer
  // than PIN_MAX_MS; a chunk worked out after that is read again (a transaction the snapshot did
  // not see could pass for seen).
  it('holds the history a window had until its chunk is worked out, and no longer than PIN_MAX_MS', () => {
    const w = new WatermarkWindows();
    w.see(105, tx(rowKey('inventory', 'B|F1')), 0); // committed before LW, not visible in the snapshot
    w.low('11', 0);
    const closed = w.close('11')!;
    w.see(106, tx(rowKey('inventory', 'E|F1')), HISTORY_MS + 1); // the stream went on: 105 is held
    expect([...w.excluded(closed, '105:106:105')]).toEqual([rowKey('inventory', 'B|F1')]);
    w.release(closed);
    w.see(107, tx(rowKey('inventory', 'G|F1')), HISTORY_MS + 2); // released: 105 is dropped now
    expect(() => w.excluded(closed, '105:106:105')).toThrow(HistoryTooShortError);
    // held too long: the window expires, its history goes and its chunk is read again
    const v = new WatermarkWindows();
    v.see(200, tx(rowKey('inventory', 'B|F1')), 0);
    v.low('12', 0);
    v.see(201, tx(rowKey('inventory', 'F|F1')), PIN_MAX_MS - 1);
    const late = v.close('12')!;
    expect([...v.excluded(late, '200:202:200,201')].sort()).toEqual([
      rowKey('inventory', 'B|F1'),
      rowKey('inventory', 'F|F1'),
    ]);
    v.see(202, tx(rowKey('inventory', 'H|F1')), PIN_MAX_MS + 1);
    expect(() => v.excluded(late, '200:202:200,201')).toThrow(/released, or its watermarks were more than/);
  });

  // A reader that died between its watermarks never sends the high one: its window must not
  // collect every later transaction's keys (and have them worked out) for the session's life.
  it('a window whose high watermark never comes expires after PIN_MAX_MS; a late one finds none', () => {
    const w = new WatermarkWindows();
    w.low('13', 0);
    const before = tx(rowKey('inventory', 'A|F1'));
    w.see(300, before, PIN_MAX_MS - 1);
    expect(w.openCount).toBe(1);
    expect(before.asked).toBe(1); // noted for the open window
    const after = tx(rowKey('inventory', 'B|F1'));
    w.see(301, after, PIN_MAX_MS + 1); // the window expires here
    w.see(302, after, PIN_MAX_MS + 2);
    expect(w.openCount).toBe(0);
    expect(after.asked).toBe(1); // the first see still had it open; none since
    expect(w.close('13')).toBeNull(); // read again
  });

  // A session has a horizon: an entry leaves the history seen by it or as a suspect, so a busy
  // stream dropping its oldest entries loses nothing.
  it('with a horizon, a window released lets history go, and a transaction unseen by it becomes a suspect', () => {
    const w = new WatermarkWindows();
    w.begin('100:100:', [], 0);
    w.see(100, tx(rowKey('inventory', 'A|F1')), 0); // visible at once
    w.see(101, tx(rowKey('inventory', 'B|F1')), 1); // kept invisible (a stalled commit)
    w.observe('101:102:101', 2);
    w.observe('101:102:101', 2 + HORIZON_MS); // the horizon: sees 100, not 101
    w.low('5', 2 + HORIZON_MS);
    const closed = w.close('5')!;
    w.see(102, tx(rowKey('inventory', 'C|F1')), HISTORY_MS + 10); // held by the window
    expect(w.suspectCount).toBe(0);
    // a chunk whose snapshot saw both: nothing left out; one that did not see 101: B left out
    expect([...w.excluded(closed, '102:102:')]).toEqual([]);
    expect([...w.excluded(closed, '101:102:101')]).toEqual([rowKey('inventory', 'B|F1')]);
    w.release(closed);
    w.see(103, tx(rowKey('inventory', 'D|F1')), HISTORY_MS + 11); // 100 and 101 leave the history
    expect(w.suspectCount).toBe(1); // 101
    w.low('6', HISTORY_MS + 11);
    const next = w.close('6')!;
    expect([...w.excluded(next, '104:104:')]).toEqual([]);
    expect(() => w.excluded(next, '101:104:101')).toThrow(HistoryTooShortError);
  });

  // A load sum of a big orders table takes longer than the horizon's HORIZON_MS: judged against the
  // horizon of its low watermark (nothing the history held then was dropped since), it is kept,
  // with every order change its snapshot did not see added, instead of being read again forever.
  it('a chunk read for longer than the horizon is worked out against the horizon of its low watermark', () => {
    const w = new WatermarkWindows();
    w.begin('100:100:', [], 0);
    const order = (xid: number, fc: string) => ({
      keys: () => [`load\u0000${fc}|20261203`],
      orders: () => [
        { tbl: 'orders' as const, op: 'I' as const, key: String(xid), image: `{"x":${xid}}`, oldImage: null },
      ],
    });
    w.see(100, order(100, 'F1'), 0); // before LW, seen by the snapshot
    w.low('7', 10);
    w.see(101, order(101, 'F1'), 20); // after LW; the snapshot (taken at once) did not see it
    // the read takes 40 s: the stream goes on, ticks move the horizon far past the snapshot
    for (let t = 1; t <= 40; t++) {
      w.see(101 + t, order(101 + t, 'F2'), t * 1_000);
      w.observe(`${102 + t}:${102 + t}:`, t * 1_000);
    }
    const closed = w.close('7')!;
    const s = '101:101:';
    expect(() => w.excluded(closed, s)).not.toThrow();
    expect(w.unseenOrders(closed, s).map((r) => r.key)).toEqual(Array.from({ length: 41 }, (_, i) => String(101 + i)));
    // without the window's hold, the snapshot is older than the horizon: read again
    w.release(closed);
    w.low('8', 40_000);
    const other = w.close('8')!;
    expect(() => w.excluded(other, s)).toThrow(/older than the capture's horizon/);
  });

  // A commit kept invisible (a synchronous standby that does not answer) across a session restart:
  // its commit came before the new stream's start, so the history never holds it.
  it("abandons a chunk whose snapshot does not see a commit from before the session's history", () => {
    const w = new WatermarkWindows();
    w.begin('100:106:100,103', [103n], 0); // 103 waited for its standby; 100 was still in progress
    w.low('1');
    w.see(104, tx(rowKey('inventory', 'A|F1')), 1);
    const closed = w.close('1')!;
    expect(() => w.excluded(closed, '100:106:100,103')).toThrow(HistoryTooShortError);
    expect([...w.excluded(closed, '100:106:100')]).toEqual([rowKey('inventory', 'A|F1')]); // saw it: fine
    // A tick's snapshot sees it; until that snapshot is the horizon, a chunk read before still did not.
    w.observe('100:107:100', 10);
    expect(w.suspectCount).toBe(1);
    expect(() => w.excluded(closed, '100:106:100,103')).toThrow(HistoryTooShortError);
    w.observe('100:108:100', 10 + HORIZON_MS); // the first tick's snapshot is the horizon now
    expect(w.suspectCount).toBe(0);
    // ...and a chunk whose window opened while 103 was a suspect is read again anyway
    expect(() => w.excluded(closed, '100:106:100,103')).toThrow(/committed before this capture's history reaches/);
    expect(() => w.excluded(closed, '100:108:100')).not.toThrow();
  });

  // A chunk read before the session began, processed by it: its snapshot may miss a commit that
  // stopped waiting for its standby before the session started (no suspect, not in the history).
  it("abandons a chunk whose snapshot is older than the session's first snapshot", () => {
    const w = new WatermarkWindows();
    w.begin('100:106:100', [], 0); // 103 is visible by now
    w.low('1');
    const closed = w.close('1')!;
    expect(() => w.excluded(closed, '100:106:100,103')).toThrow(HistoryTooShortError);
    expect(() => w.excluded(closed, '100:106:100')).not.toThrow();
  });

  it('a transaction leaving the history unseen by the horizon stays a suspect', () => {
    const w = new WatermarkWindows();
    w.begin('100:100:', [], 0);
    w.see(100, tx(rowKey('inventory', 'A|F1')), 0); // committed, kept invisible
    w.see(101, tx(rowKey('inventory', 'B|F1')), 1);
    w.observe('100:102:100', 2); // 101 is visible, 100 not
    w.observe('100:102:100', 2 + HORIZON_MS); // the horizon now
    w.see(102, tx(rowKey('inventory', 'C|F1')), HISTORY_MS + 5); // 100 and 101 leave the history
    expect(w.suspectCount).toBe(1);
    w.low('2');
    const closed = w.close('2')!;
    expect(() => w.excluded(closed, '100:103:100')).toThrow(HistoryTooShortError);
    expect([...w.excluded(closed, '103:103:')]).toEqual([]);
  });

  it('a high watermark whose low one this capture never saw closes nothing (the chunk is abandoned)', () => {
    const w = new WatermarkWindows();
    expect(w.close('8')).toBeNull();
  });

  it('widens a 32-bit xid to the 64-bit one nearest the snapshot, across an epoch boundary', () => {
    expect(widenXid(5, 4_294_967_300n)).toBe(4_294_967_301n); // epoch 1
    expect(widenXid(4_294_967_290, 4_294_967_300n)).toBe(4_294_967_290n); // still epoch 0
    expect(widenXid(1234, 2000n)).toBe(1234n);
  });
});

describe('a chunk as outbox rows', () => {
  const chunk: StoredChunk = {
    id: '1',
    token: null,
    tbl: 'inventory',
    keys: ['A|F1', 'B|F1', 'C|F1', 'C|F1'],
    deleteAbsent: true,
    afterKey: null,
    snapshot: '1:1:',
    rows: [
      { key: 'A|F1', image: { sku_id: 'A', fc_id: 'F1', on_hand: 3, reserved: 0 } },
      { key: 'B|F1', image: { sku_id: 'B', fc_id: 'F1', on_hand: 4, reserved: 1 } },
    ],
  };

  it('refreshes what was read, deletes what is absent, and leaves out what the stream changed', () => {
    const rows = rowsOfChunk(chunk, { excluded: new Set([rowKey('inventory', 'B|F1')]), unseenOrders: [] });
    expect(rows!.map((r) => [r.op, r.key, r.image && JSON.parse(r.image)])).toEqual([
      ['R', 'A|F1', { sku_id: 'A', fc_id: 'F1', on_hand: 3, reserved: 0 }],
      ['D', 'C|F1', { sku_id: 'C', fc_id: 'F1' }],
    ]);
  });

  it('writes nothing when the table was truncated meanwhile', () => {
    expect(rowsOfChunk(chunk, { excluded: new Set([truncateKey('inventory')]), unseenOrders: [] })).toEqual([]);
  });

  it('a chunk of load sums adds the order changes its snapshot did not see, as of the high watermark', () => {
    const loads: StoredChunk = {
      id: '2',
      token: null,
      tbl: 'orders',
      keys: null,
      deleteAbsent: false,
      afterKey: '20261203',
      snapshot: '1:1:',
      rows: [
        { key: 'F1|20261203', image: { fc_id: 'F1', day: '20261203', load: 10 } },
        { key: 'F2|20261203', image: { fc_id: 'F2', day: '20261203', load: 4 } },
      ],
    };
    const order = (qty: number, fc: string, placed: string, status = 'placed') =>
      JSON.stringify({ order_id: 1, sku_id: 'A', fc_id: fc, qty, status, placed_at: placed });
    const unseenOrders = [
      {
        tbl: 'orders' as const,
        op: 'I' as const,
        key: '7',
        image: order(3, 'F1', '2026-12-03T10:00:00+00:00'),
        oldImage: null,
      },
      // moved from F2 to F3: F2 loses 2, F3 (in no sum read) gains 2
      {
        tbl: 'orders' as const,
        op: 'U' as const,
        key: '8',
        image: order(2, 'F3', '2026-12-03T11:00:00+00:00'),
        oldImage: order(2, 'F2', '2026-12-03T11:00:00+00:00'),
      },
      // a day before the chunk's first: not its business
      {
        tbl: 'orders' as const,
        op: 'I' as const,
        key: '9',
        image: order(5, 'F1', '2026-12-01T10:00:00+00:00'),
        oldImage: null,
      },
    ];
    const rows = rowsOfChunk(loads, { excluded: new Set(), unseenOrders })!;
    expect(rows.map((r) => [r.op, r.key, JSON.parse(r.image!).load])).toEqual([
      ['S', 'F1|20261203', 13],
      ['S', 'F2|20261203', 2],
      ['S', 'F3|20261203', 2],
    ]);
    // the last set says the sets are complete from the chunk's first day (op Z zeroes what they did not set)
    expect(rows.map((r) => JSON.parse(r.image!).complete_from)).toEqual([undefined, undefined, loads.afterKey]);
    const last = rows[2]!;
    const outboxRow = { id: '5', txid: '9', tbl: last.tbl, op: last.op, key: last.key, created_ms: 0 };
    expect(featureUpdatesFrom({ ...outboxRow, image: JSON.parse(last.image!), old_image: null })).toEqual([
      { feature: 'fc.loadSet', fc: 'F3', day: '20261203', value: 2, txid: '9', id: 5, completeFrom: loads.afterKey },
    ]);
    // a chunk from the last day of year 9999: an order on the first of year 10000 is after it
    const late = { ...loads, afterKey: '99991231', rows: [] };
    const tenThousand = [{ ...unseenOrders[0]!, image: order(4, 'F1', '10000-01-01T10:00:00+00:00') }];
    expect(rowsOfChunk(late, { excluded: new Set(), unseenOrders: tenThousand })!.map((r) => r.key)).toEqual([
      'F1|100000101',
    ]);
    // no order at all from its first day on: the completeness alone, in a row of its own
    const none = rowsOfChunk({ ...loads, rows: [] }, { excluded: new Set(), unseenOrders: [] })!;
    expect(none).toEqual([
      {
        tbl: 'orders',
        op: 'S',
        key: `|${loads.afterKey}`,
        image: `{"complete_from":"${loads.afterKey}"}`,
        oldImage: null,
      },
    ]);
    expect(
      featureUpdatesFrom({ ...outboxRow, key: none[0]!.key, image: JSON.parse(none[0]!.image!), old_image: null }),
    ).toEqual([{ feature: 'fc.loadsComplete', from: loads.afterKey, txid: '9', id: 5 }]);
    // with anything else in it, it is not a row the pipeline wrote: malformed
    expect(() =>
      featureUpdatesFrom({ ...outboxRow, image: { complete_from: loads.afterKey, load: 1 }, old_image: null }),
    ).toThrow(/complete_from|load|unrecognized/i);
    // a TRUNCATE it did not see: no sum can be corrected, the chunk is read again
    expect(
      rowsOfChunk(loads, {
        excluded: new Set(),
        unseenOrders: [{ tbl: 'orders', op: 'T', key: '', image: null, oldImage: null }],
      }),
    ).toBeNull();
  });
});
