import { describe, expect, it } from 'vitest';
import type { FeatureUpdate, Lifecycle } from '../../features/definitions';
import { foldOps } from '../../store/apply';
import { storeKeys } from '../../store/keys';

const keys = storeKeys('p:');
const at = (update: FeatureUpdate, source: number) => ({ update, source });

describe('foldOps', () => {
  it('keeps only the highest version per field, whatever order the batch holds them in', () => {
    const ops = foldOps(keys, [
      at({ feature: 'sku.available', sku: 'S', fc: 'F', value: 9, version: 30, txid: '1' }, 0),
      at({ feature: 'sku.available', sku: 'S', fc: 'F', value: 1, version: 10, txid: '1' }, 1),
      at({ feature: 'sku.available', sku: 'S', fc: 'G', value: 4, version: 20, txid: '1' }, 2),
      at({ feature: 'sku.lifecycle', sku: 'S', value: null, version: 40, txid: '1' }, 3),
    ]);
    expect(ops).toEqual([
      { kind: 'stock', key: 'p:s:S', fc: 'F', value: '9', version: 30, txid: '1', source: 0 },
      { kind: 'stock', key: 'p:s:S', fc: 'G', value: '4', version: 20, txid: '1', source: 2 },
      { kind: 'lifecycle', key: 'p:s:S', code: 'x', version: 40, txid: '1', update: false, source: 3 },
    ]);
  });

  it("a lifecycle update folded over its SKU's insert is applied as an insert: no stock rebuild", () => {
    const lifecycle = (value: Lifecycle, version: number, op: 'I' | 'U' | 'R', source: number) =>
      at(
        {
          feature: 'sku.lifecycle',
          sku: 'S',
          value,
          version,
          txid: '1',
          ...(op === 'U' ? { update: true } : op === 'I' ? { insert: true } : { refresh: true }),
        },
        source,
      );
    // inserted paused, then made active, in one batch (in either order in the batch)
    const inserted = foldOps(keys, [lifecycle('paused', 10, 'I', 0), lifecycle('active', 12, 'U', 1)]);
    const reversed = foldOps(keys, [lifecycle('active', 12, 'U', 1), lifecycle('paused', 10, 'I', 0)]);
    for (const ops of [inserted, reversed])
      expect(ops).toEqual([
        { kind: 'lifecycle', key: 'p:s:S', code: 'a', version: 12, txid: '1', update: false, source: 1 },
      ]);
    // two updates stay an update: the apply script still checks the key for a lost lifecycle
    // and so does an update over a refresh of the skus row alone (a retried dead letter, a repair),
    // which says nothing of the SKU's stock
    for (const first of ['U', 'R'] as const)
      expect(foldOps(keys, [lifecycle('paused', 10, first, 0), lifecycle('active', 12, 'U', 1)])).toEqual([
        { kind: 'lifecycle', key: 'p:s:S', code: 'a', version: 12, txid: '1', update: true, source: 1 },
      ]);
    // a refresh or delete over an update keeps the update's lost-key check (a reactivation re-read
    // by a repair in the same batch must still ask for the rebuild)
    expect(foldOps(keys, [lifecycle('active', 10, 'U', 0), lifecycle('active', 12, 'R', 1)])).toEqual([
      { kind: 'lifecycle', key: 'p:s:S', code: 'a', version: 12, txid: '1', update: true, refresh: true, source: 1 },
    ]);
    // an insert, then two updates: the last stands for the insert through both folds
    expect(
      foldOps(keys, [
        lifecycle('paused', 10, 'I', 0),
        lifecycle('active', 11, 'U', 1),
        lifecycle('paused', 12, 'U', 2),
      ]),
    ).toEqual([{ kind: 'lifecycle', key: 'p:s:S', code: 'p', version: 12, txid: '1', update: false, source: 2 }]);
  });

  // The apply script keeps a tombstone's TTL through later writes of the same state (apply.lua,
  // lifecycleTtl): discontinued, active, discontinued again folded to the last would keep the
  // first discontinuation's TTL, and the key could expire right after the SKU was last active.
  it('folds a lifecycle within a run of one kind, never across a change of kind, in version order', () => {
    const lc = (value: Lifecycle | null, version: number, source: number) =>
      at({ feature: 'sku.lifecycle', sku: 'S', value, version, txid: '1', update: true }, source);
    const op = (code: string, version: number, source: number) => ({
      kind: 'lifecycle',
      key: 'p:s:S',
      code,
      version,
      txid: '1',
      update: true,
      source,
    });
    // active, then discontinued again (given in either order): both, oldest first
    for (const batch of [
      [lc('active', 12, 0), lc('discontinued', 13, 1)],
      [lc('discontinued', 13, 1), lc('active', 12, 0)],
    ])
      expect(foldOps(keys, batch)).toEqual([op('a', 12, 0), op('d', 13, 1)]);
    // runs of one kind fold to their newest: active and paused persist alike; two discontinuations
    expect(
      foldOps(keys, [
        lc('active', 10, 0),
        lc('paused', 11, 1),
        lc('discontinued', 12, 2),
        lc('discontinued', 14, 3),
        lc(null, 15, 4),
      ]),
    ).toEqual([op('p', 11, 1), op('d', 14, 3), op('x', 15, 4)]);
  });

  // A refill read between watermarks: its last set says the loads are complete (op Z), applied
  // after that set, never before it: a named FC zeroed by it would read 0 until its set came.
  it("puts a refill's completeness after its last set", () => {
    const set = { feature: 'fc.loadSet', fc: 'F', day: '20260101', value: 7, txid: '5', id: 9 } as const;
    expect(foldOps(keys, [at({ ...set, id: 8 }, 0), at({ ...set, completeFrom: '20251230' }, 1)], '3')).toEqual([
      { kind: 'loadSet', key: 'p:l:F:20260101', count: '7', position: '3:5:8', snapshot: '', source: 0 },
      { kind: 'loadSet', key: 'p:l:F:20260101', count: '7', position: '3:5:9', snapshot: '', source: 1 },
      { kind: 'loadsComplete', key: 'p:loads', from: '20251230', position: '3:5:9', snapshot: '', source: 1 },
    ]);
  });

  it('keeps every load delta, in stream order', () => {
    const ops = foldOps(keys, [
      at({ feature: 'fc.load', fc: 'F', day: '20260101', delta: 2, txid: '5', id: 9 }, 0),
      at({ feature: 'fc.load', fc: 'F', day: '20260101', delta: -2, txid: '6', id: 3 }, 1),
    ]);
    expect(ops).toEqual([
      { kind: 'loadDelta', key: 'p:l:F:20260101', delta: 2, txid: '5', id: 9, batch: '0', source: 0 },
      { kind: 'loadDelta', key: 'p:l:F:20260101', delta: -2, txid: '6', id: 3, batch: '0', source: 1 },
    ]);
  });
});
