/**
 * reconcile/load-ranges.ts: a load difference is explained only by what later orders' deltas can
 * add up to, for its FC and day; changes whose deltas cannot be told explain anything of their FC.
 */
import { describe, expect, it } from 'vitest';
import { laterOrderLoads } from '../../reconcile/load-ranges';
import { parseSnapshot } from '../../db/pg-snapshot';
import type { ChangedRow } from '../../reconcile/source-view';

const AT = '2026-12-06T10:00:00Z';
const DAY = '20261206';
let next = 1;
const order = (fc: string, qty: number, status = 'placed', placedAt = AT) => ({
  fc_id: fc,
  qty,
  status,
  placed_at: placedAt,
  sku_id: 'S1',
});
function change(op: string, image: unknown, oldImage: unknown = null, tbl = 'orders', txid = '700'): ChangedRow {
  const fc = (image as { fc_id?: string } | null)?.fc_id ?? null;
  const oldFc = (oldImage as { fc_id?: string } | null)?.fc_id ?? null;
  return { id: String(next++), txid, tbl, op, key: String(next), fc, old_fc: oldFc, image, old_image: oldImage };
}

const explainer = (changed: ChangedRow[]) => laterOrderLoads(changed).explains;

describe('load differences later orders explain', () => {
  it('only within the sums of the deltas that raise and that lower the counter, per FC and day', () => {
    const explains = explainer([
      change('I', order('F1', 2)),
      change('I', order('F1', 3)),
      change('D', order('F1', 4)),
      change('U', order('F2', 1, 'cancelled'), order('F2', 5)), // F2 loses 5
    ]);
    for (const diff of [-4, -1, 0, 1, 5]) expect(explains(`F1|${DAY}`, diff)).toBe(true);
    for (const diff of [-5, 6, 1000]) expect(explains(`F1|${DAY}`, diff)).toBe(false);
    expect(explains(`F2|${DAY}`, -5)).toBe(true);
    expect(explains(`F2|${DAY}`, 1)).toBe(false);
    expect(explains(`F1|20261205`, 1)).toBe(false); // another day
    expect(explains(`F3|${DAY}`, 1)).toBe(false); // an FC no later order touched
  });

  it('an order moved between FCs lowers one and raises the other', () => {
    const explains = explainer([change('U', order('F2', 3), order('F1', 3))]);
    expect(explains(`F1|${DAY}`, -3)).toBe(true);
    expect(explains(`F1|${DAY}`, 3)).toBe(false);
    expect(explains(`F2|${DAY}`, 3)).toBe(true);
    expect(explains(`F2|${DAY}`, -3)).toBe(false);
  });

  it('a change whose deltas cannot be told explains anything of its FC; a TRUNCATE, of every FC', () => {
    const malformed = explainer([change('U', order('F1', 2), null)]); // no before-image
    expect(malformed(`F1|${DAY}`, 999)).toBe(true);
    expect(malformed(`F2|${DAY}`, 1)).toBe(false);
    expect(explainer([change('T', null)])(`F9|${DAY}`, -50)).toBe(true);
    expect(explainer([change('I', 'not json {')])(`F9|${DAY}`, 1)).toBe(true); // FC unknown
  });

  it('ignores changes of other tables; a key whose FC id holds a bar is its FC', () => {
    const explains = explainer([
      change('U', { fc_id: 'F1', daily_capacity: 3 }, null, 'fulfillment_centers'),
      change('I', order('F|1', 2)),
    ]);
    expect(explains(`F1|${DAY}`, 1)).toBe(false);
    expect(explains(`F|1|${DAY}`, 2)).toBe(true);
  });

  it('counts exactly what the drain had applied, ranges over what may be in the store, ignores what cannot be', () => {
    const rows = [
      change('I', order('F1', 2), null, 'orders', '100'), // applied for certain
      change('I', order('F1', 3), null, 'orders', '150'), // committed by the re-read: maybe
      change('I', order('F1', 7), null, 'orders', '300'), // committed after the re-read: not in the store
    ];
    const reach = { applied: parseSnapshot('120:120:'), present: parseSnapshot('200:200:'), viewMaybe: null };
    const loads = laterOrderLoads(rows, reach);
    expect([0, 1, 2, 3, 4, 5, 6, 12].filter((d) => loads.explains(`F1|${DAY}`, d))).toEqual([2, 3, 4, 5]);
    // (with no reach, every later change may or may not be in the store)
    expect(laterOrderLoads(rows).explains(`F1|${DAY}`, 1)).toBe(true);
    // the view may have seen some of them (capture from the WAL): those are in the range
    const unsure = laterOrderLoads(rows, { ...reach, viewMaybe: parseSnapshot('101:101:') });
    expect([0, 1, 2, 3, 4, 5, 6].filter((d) => unsure.explains(`F1|${DAY}`, d))).toEqual([0, 1, 2, 3, 4, 5]);
  });
});
