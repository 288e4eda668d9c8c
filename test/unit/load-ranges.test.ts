/**
 * reconcile/load-ranges.ts: a load difference is explained only by what later orders' deltas can
 * add up to, for its FC and day; changes whose deltas cannot be told explain anything of their FC.
 */
import { describe, expect, it } from 'vitest';
import { loadDifferenceExplainer } from '../../reconcile/load-ranges';
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
function change(op: string, image: unknown, oldImage: unknown = null, tbl = 'orders'): ChangedRow {
  const fc = (image as { fc_id?: string } | null)?.fc_id ?? null;
  const oldFc = (oldImage as { fc_id?: string } | null)?.fc_id ?? null;
  return { id: String(next++), txid: '700', tbl, op, key: String(next), fc, old_fc: oldFc, image, old_image: oldImage };
}

describe('load differences later orders explain', () => {
  it('only within the sums of the deltas that raise and that lower the counter, per FC and day', () => {
    const explains = loadDifferenceExplainer([
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
    const explains = loadDifferenceExplainer([change('U', order('F2', 3), order('F1', 3))]);
    expect(explains(`F1|${DAY}`, -3)).toBe(true);
    expect(explains(`F1|${DAY}`, 3)).toBe(false);
    expect(explains(`F2|${DAY}`, 3)).toBe(true);
    expect(explains(`F2|${DAY}`, -3)).toBe(false);
  });

  it('a change whose deltas cannot be told explains anything of its FC; a TRUNCATE, of every FC', () => {
    const malformed = loadDifferenceExplainer([change('U', order('F1', 2), null)]); // no before-image
    expect(malformed(`F1|${DAY}`, 999)).toBe(true);
    expect(malformed(`F2|${DAY}`, 1)).toBe(false);
    expect(loadDifferenceExplainer([change('T', null)])(`F9|${DAY}`, -50)).toBe(true);
    expect(loadDifferenceExplainer([change('I', 'not json {')])(`F9|${DAY}`, 1)).toBe(true); // FC unknown
  });

  it('ignores changes of other tables; a key whose FC id holds a bar is its FC', () => {
    const explains = loadDifferenceExplainer([
      change('U', { fc_id: 'F1', daily_capacity: 3 }, null, 'fulfillment_centers'),
      change('I', order('F|1', 2)),
    ]);
    expect(explains(`F1|${DAY}`, 1)).toBe(false);
    expect(explains(`F|1|${DAY}`, 2)).toBe(true);
  });
});
