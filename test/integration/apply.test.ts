/** The versioned apply against real Redis: duplicates and older changes have no effect. */
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import type { FeatureUpdate } from '../../features/definitions';
import { applyUpdates } from '../../store/apply';
import { resetState, testClients } from '../support/env';

const c = testClients();
afterAll(() => c.close());
beforeEach(() => resetState(c));

const opts = { chunk: 2, tombstoneTtlS: 3600, loadTtlS: 7200 };
const batch = (updates: FeatureUpdate[]) => updates.map((update, source) => ({ update, source }));
async function dump(): Promise<Record<string, Record<string, string>>> {
  const out: Record<string, Record<string, string>> = {};
  for (const k of (await c.redis.keys(`${c.keys.prefix}*`)).sort()) out[k] = await c.redis.hgetall(k);
  return out;
}

const sample: FeatureUpdate[] = [
  { feature: 'sku.lifecycle', sku: 'S1', value: 'active', version: 5 },
  { feature: 'sku.available', sku: 'S1', fc: 'F1', value: 7, version: 6 },
  { feature: 'fc.capacity', fc: 'F1', value: 100, version: 7 },
  { feature: 'region.rank', region: 'R1', fc: 'F1', value: 1, version: 8 },
  { feature: 'fc.load', fc: 'F1', day: '20261125', delta: 3, txid: '100', id: 9 },
  { feature: 'fc.load', fc: 'F1', day: '20261125', delta: 2, txid: '101', id: 4 },
];

describe('applyUpdates', () => {
  it('applies a batch once; the same batch again changes nothing', async () => {
    const first = await applyUpdates(c.redis, c.keys, batch(sample), opts);
    expect(first.applied).toBe(6);
    const after = await dump();
    expect(after[c.keys.sku('S1')]).toEqual({ _: 'a|5', F1: '7|6' });
    expect(after[c.keys.load('F1', '20261125')].n).toBe('5');
    const again = await applyUpdates(c.redis, c.keys, batch(sample), opts);
    expect(again.applied).toBe(0);
    expect(await dump()).toEqual(after);
  });

  it('ignores an older change that arrives after a newer one', async () => {
    await applyUpdates(c.redis, c.keys, batch([
      { feature: 'sku.available', sku: 'S1', fc: 'F1', value: 3, version: 20 },
      { feature: 'fc.load', fc: 'F1', day: '20261125', delta: 4, txid: '200', id: 50 },
    ]), opts);
    const before = await dump();
    const r = await applyUpdates(c.redis, c.keys, batch([
      { feature: 'sku.available', sku: 'S1', fc: 'F1', value: 99, version: 19 },
      { feature: 'fc.load', fc: 'F1', day: '20261125', delta: 10, txid: '199', id: 60 },
      { feature: 'fc.load', fc: 'F1', day: '20261125', delta: 10, txid: '200', id: 49 },
    ]), opts);
    expect(r.applied).toBe(0);
    expect(await dump()).toEqual(before);
  });

  it('a delete leaves a versioned tombstone that fences off an older late change', async () => {
    await applyUpdates(c.redis, c.keys, batch([{ feature: 'sku.available', sku: 'S1', fc: 'F1', value: null, version: 30 }]), opts);
    await applyUpdates(c.redis, c.keys, batch([{ feature: 'sku.available', sku: 'S1', fc: 'F1', value: 8, version: 29 }]), opts);
    expect(await c.redis.hget(c.keys.sku('S1'), 'F1')).toBe('x|30');
    await applyUpdates(c.redis, c.keys, batch([{ feature: 'sku.available', sku: 'S1', fc: 'F1', value: 8, version: 31 }]), opts);
    expect(await c.redis.hget(c.keys.sku('S1'), 'F1')).toBe('8|31');
  });

  it('a deleted SKU expires after the tombstone TTL; re-creating it clears the TTL', async () => {
    await applyUpdates(c.redis, c.keys, batch([{ feature: 'sku.lifecycle', sku: 'S1', value: null, version: 40 }]), opts);
    expect(await c.redis.ttl(c.keys.sku('S1'))).toBeGreaterThan(3000);
    await applyUpdates(c.redis, c.keys, batch([{ feature: 'sku.lifecycle', sku: 'S1', value: 'active', version: 41 }]), opts);
    expect(await c.redis.ttl(c.keys.sku('S1'))).toBe(-1);
  });

  it('reports a key Redis rejects without failing the rest of the batch', async () => {
    await c.redis.set(c.keys.sku('BAD'), 'not a hash');
    const r = await applyUpdates(c.redis, c.keys, batch([
      { feature: 'sku.lifecycle', sku: 'BAD', value: 'active', version: 1 },
      { feature: 'sku.lifecycle', sku: 'OK', value: 'active', version: 2 },
    ]), opts);
    expect(r.failures).toEqual([{ source: 0, error: expect.stringMatching(/WRONGTYPE/) }]);
    expect(await c.redis.hget(c.keys.sku('OK'), '_')).toBe('a|2');
  });
});
