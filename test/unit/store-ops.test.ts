import { describe, expect, it } from 'vitest';
import type { FeatureUpdate } from '../../features/definitions';
import { foldOps, mergeLoadDeltas, toBackfillOps } from '../../store/apply';
import { storeKeys } from '../../store/keys';
import { pushOpArgs, StoreOp } from '../../store/store-ops';

const keys = storeKeys('p:');
const encode = (ops: StoreOp[]) =>
  ops.map((op) => {
    const args: (string | number)[] = [];
    pushOpArgs(args, op);
    return args;
  });

// The script's wire format (store/lua/apply.lua, encoded by store/store-ops.ts) is fixed: these tuples must not change.
describe('pushOpArgs', () => {
  it('encodes the drain’s operations as code and four values', () => {
    const ops = foldOps(
      keys,
      [
        { feature: 'fc.capacity', fc: 'F', value: 120, version: 11, txid: '700' },
        { feature: 'region.rank', region: 'R', fc: 'F', value: null, version: 12, txid: '701' },
        { feature: 'sku.available', sku: 'S', fc: 'F', value: 4, version: 13, txid: '702' },
        { feature: 'sku.lifecycle', sku: 'S', value: 'active', version: 14, txid: '703' },
        { feature: 'sku.lifecycle', sku: 'T', value: 'paused', version: 15, txid: '704', update: true },
        { feature: 'fc.load', fc: 'F', day: '20260101', delta: -3, txid: '705', id: 16 },
      ].map((update, source) => ({ update: update as FeatureUpdate, source })),
      '9',
    );
    expect(encode(ops)).toEqual([
      ['S', 'c', '120', '11', '700'],
      ['S', 'F', 'x', '12', '701'],
      ['A', 'F', '4', '13', '702'],
      ['Y', '#', 'a', '14', '703'],
      ['U', '#', 'p', '15', '704'],
      ['L', '-3', '705', '16', '9'],
    ]);
  });

  it('merges the deltas of one counter and batch into an M operation', () => {
    const load = (delta: number, txid: string, id: number, batch: string, source: number): StoreOp => ({
      kind: 'loadDelta',
      key: 'p:l:F:1',
      delta,
      txid,
      id,
      batch,
      source,
    });
    const merged = mergeLoadDeltas([load(2, '5', 9, '1', 0), load(-1, '6', 10, '1', 1), load(4, '7', 11, '2', 2)]);
    expect(encode(merged)).toEqual([
      ['M', '2:5:9,-1:6:10', '-', '-', '1'],
      ['M', '4:7:11', '-', '-', '2'],
    ]);
    expect(merged.map((op) => op.kind === 'loadDeltas' && op.sources)).toEqual([[0, 1], [2]]);
  });

  it('encodes backfill fills, counter sets and dead-letter retries', () => {
    const fills = (
      [
        { feature: 'sku.lifecycle', sku: 'S', value: 'discontinued', version: 1, txid: '1' },
        { feature: 'sku.available', sku: 'S', fc: 'F', value: 7, version: 1, txid: '1' },
        { feature: 'fc.capacity', fc: 'F', value: 50, version: 1, txid: '1' },
        { feature: 'fc.load', fc: 'F', day: '20260101', delta: 1, txid: '1', id: 1 },
      ] as FeatureUpdate[]
    ).flatMap((u, i) => toBackfillOps(keys, u, 's4', i));
    expect(fills).toHaveLength(3); // a load is never filled
    expect(encode(fills)).toEqual([
      ['B', '#', 'd', 's4', 'y'],
      ['B', 'F', '7', 's4', 'a'],
      ['B', 'c', '50', 's4', 's'],
    ]);
    expect(
      encode([
        { kind: 'loadSet', key: 'p:l:F:1', count: '10', position: '3:150:7', snapshot: '4', source: 0 },
        { kind: 'loadRetry', key: 'p:l:F:1', delta: -2, mark: '42:1', txid: '150', id: '9', source: 0 },
      ]),
    ).toEqual([
      ['C', '10', '3:150:7', '', '4'],
      ['R', '-2', '42:1', '150', '9'],
    ]);
  });
});
