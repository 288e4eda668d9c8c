import calculateSlot from 'cluster-key-slot';
import { describe, expect, it } from 'vitest';
import { partitionTags, skuHash, skuOfKey, storeKeys } from '../../store/keys';
import { parseClusterNodes } from '../../store/redis-client';

describe('store partitions', () => {
  it('one partition keeps the key names a single Redis always had', () => {
    const keys = storeKeys('fb:', 1);
    expect(keys.sku('S1')).toBe('fb:s:S1');
    expect(keys.partitions[0].fc('F')).toBe('fb:f:F');
    expect(keys.partitions[0].pos).toBe('fb:pos');
    expect(keys.pattern('s')).toBe('fb:s:*');
  });

  it('spreads the partitions’ slots evenly, so every master of a cluster gets its share', () => {
    const tags = partitionTags(16);
    expect(new Set(tags).size).toBe(16);
    // a 3-master cluster owns three contiguous thirds of the slots
    const perMaster = [0, 0, 0];
    for (const tag of tags) perMaster[Math.min(2, Math.floor(calculateSlot(tag) / (16384 / 3)))]++;
    expect(perMaster.every((n) => n === 5 || n === 6)).toBe(true);
  });

  it('every key of a partition is in the partition’s slot, and maps back to it', () => {
    const keys = storeKeys('fb:', 16);
    const ids = ['2', '10', '_', '__proto__', 'constructor', 'a.b:c-d', 'SKU-0000001'];
    for (const sku of ids) {
      const p = keys.ofSku(sku);
      const slot = calculateSlot(p.pos);
      for (const key of [keys.sku(sku), p.fc('F'), p.load('F', '20260101'), p.region('R'), p.meta, p.epoch, p.fence])
        expect(calculateSlot(key)).toBe(slot);
      expect(keys.ofKey(keys.sku(sku))).toBe(p);
      expect(skuOfKey(keys, keys.sku(sku))).toBe(sku);
      expect(keys.sku(sku).startsWith(`fb:{`)).toBe(true);
    }
    expect(() => keys.ofKey('fb:s:S1')).toThrow(/no partition/);
  });

  it('hashes SKUs stably (every process must agree) and spreads them', () => {
    expect(skuHash('SKU-0000001')).toBe(skuHash('SKU-0000001'));
    expect(skuHash('')).toBe(0x811c9dc5);
    const keys = storeKeys('fb:', 16);
    const counts = new Array(16).fill(0);
    for (let i = 0; i < 16_000; i++) counts[keys.ofSku(`SKU-${i}`).index]++;
    expect(Math.min(...counts)).toBeGreaterThan(800);
    expect(Math.max(...counts)).toBeLessThan(1200);
  });

  it('refuses a partition count out of range', () => {
    expect(() => storeKeys('fb:', 0)).toThrow(RangeError);
    expect(() => storeKeys('fb:', 1025)).toThrow(RangeError);
  });

  it('reads cluster seed nodes as host:port or URLs with credentials', () => {
    expect(parseClusterNodes('10.0.0.1:7000, redis://u:p%40ss@h:7001')).toEqual([
      { host: '10.0.0.1', port: 7000, username: undefined, password: undefined },
      { host: 'h', port: 7001, username: 'u', password: 'p@ss' },
    ]);
  });
});
