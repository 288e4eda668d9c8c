/**
 * What a dead-lettered change holds back from fresh answers (store/held.ts, heldSubjects), as pure
 * logic: the same subjects whether the images come as parsed JSON (the dead letters' jsonb) or as
 * text, and everything held when what the change touched cannot be told.
 */
import { describe, expect, it } from 'vitest';
import { HELD_ALL, heldSubjects } from '../../store/held';

const row = (tbl: string, op: string, key: string | null, image: unknown = null, old_image: unknown = null) => ({
  tbl,
  op,
  key,
  image,
  old_image,
});

describe('heldSubjects', () => {
  it('a SKU by its key, and by its image when they disagree; an inventory row by its SKU', () => {
    expect(heldSubjects(row('skus', 'U', 'S1', { sku_id: 'S1', lifecycle: 'x' }))).toEqual(['s:S1']);
    expect(heldSubjects(row('skus', 'U', 'S1', '{"sku_id": "S2"}'))).toEqual(['s:S1', 's:S2']);
    expect(heldSubjects(row('inventory', 'U', 'S1|F1', { sku_id: 'S1' }))).toEqual(['s:S1']);
    // an id holding '|': the key does not split, the image says
    expect(heldSubjects(row('inventory', 'U', 'P|Q|F1', { sku_id: 'P|Q', fc_id: 'F1' }))).toEqual(['s:P|Q']);
    expect(heldSubjects(row('inventory', 'U', 'P|Q|F1', 'not json'))).toEqual([HELD_ALL]);
  });

  it("an FC, a region, an order's FCs before and after", () => {
    expect(heldSubjects(row('fulfillment_centers', 'U', 'F1'))).toEqual(['f:F1']);
    expect(heldSubjects(row('region_fc', 'D', 'R1|F1', { region: 'R1', fc_id: 'F1' }))).toEqual(['r:R1']);
    const order = (fc: string | null) => ({ order_id: 1, fc_id: fc, qty: 1, status: 'placed', placed_at: 'x' });
    expect(heldSubjects(row('orders', 'U', '1', order('F2'), order('F1')))).toEqual(['f:F2', 'f:F1']);
    expect(heldSubjects(row('orders', 'I', '1', JSON.stringify(order('F3'))))).toEqual(['f:F3']);
    expect(heldSubjects(row('orders', 'I', '1', order(null)))).toEqual([]); // counts nowhere (ADR 0009)
  });

  it('an empty id as the id it is, not as "cannot be told": no read can ask for it, so it makes nothing stale', () => {
    expect(heldSubjects(row('skus', 'I', '', { sku_id: '', lifecycle: 'active' }))).toEqual(['s:']);
    expect(heldSubjects(row('skus', 'D', '', null))).toEqual(['s:']);
    expect(heldSubjects(row('inventory', 'U', '|F1', { sku_id: '', fc_id: 'F1' }))).toEqual(['s:']);
    expect(heldSubjects(row('inventory', 'D', '|F1', null))).toEqual(['s:']);
    expect(heldSubjects(row('fulfillment_centers', 'U', '', { fc_id: '' }))).toEqual(['f:']);
    expect(heldSubjects(row('region_fc', 'I', '|F1', { region: '', fc_id: 'F1' }))).toEqual(['r:']);
    // an order on the empty FC counts on an FC no region can name (region_fc refuses the id)
    const order = { order_id: 1, fc_id: '', qty: 1, status: 'placed', placed_at: 'x' };
    expect(heldSubjects(row('orders', 'I', '1', order))).toEqual([]);
  });

  it('everything when what it touched cannot be told; nothing for a table the badge does not read', () => {
    expect(heldSubjects(row('inventory', 'T', ''))).toEqual([HELD_ALL]);
    expect(heldSubjects(row('skus', 'I', null, null))).toEqual([HELD_ALL]);
    expect(heldSubjects(row('inventory', 'U', null, 'not json'))).toEqual([HELD_ALL]);
    expect(heldSubjects(row('fulfillment_centers', 'U', null))).toEqual([HELD_ALL]);
    // an update of an order without its before-image: the FC it counted on is unknown
    expect(heldSubjects(row('orders', 'U', '1', { fc_id: 'F2' }, null))).toEqual([HELD_ALL, 'f:F2']);
    expect(heldSubjects(row('orders', 'D', '1', 'not json'))).toEqual([HELD_ALL]);
    // a refill's last load set (its loads complete: capture/chunk-rows.ts) holds the whole partition
    const set = { fc_id: 'F1', day: '20261203', load: 3 };
    expect(heldSubjects(row('orders', 'S', 'F1|20261203', set))).toEqual(['f:F1']);
    expect(heldSubjects(row('orders', 'S', 'F1|20261203', { ...set, complete_from: '20261201' }))).toEqual([HELD_ALL]);
    // and so does the completeness alone of a refill that found no order
    expect(heldSubjects(row('orders', 'S', '|20261201', { complete_from: '20261201' }))).toEqual([HELD_ALL]);
    expect(heldSubjects(row('warehouses', 'I', 'W', {}))).toEqual([]);
    expect(heldSubjects(row('warehouses', 'T', ''))).toEqual([]); // not a TRUNCATE of the contract's
  });
});
