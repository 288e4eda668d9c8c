/** Drain shards as pure logic: names, which partitions a shard owns, the earliest snapshot. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  drainShard,
  drainShards,
  earliestSnapshot,
  ownedPartitions,
  shardKeys,
  shardOfConsumer,
  shardRoutes,
} from '../../outbox/shards';
import { shardDeltaSql } from '../../outbox/delta';
import { storeKeys } from '../../store/keys';

describe('drain shards', () => {
  it('one shard keeps the single drain names; several get names of their own, read back from the cursor row', () => {
    expect(drainShard(0, 1)).toEqual({ index: 0, count: 1, consumer: 'redis-online-store', lease: 'drain' });
    expect(drainShard(2, 4)).toMatchObject({ consumer: 'redis-online-store/2of4', lease: 'drain/2of4' });
    for (const s of [...drainShards(1), ...drainShards(4), ...drainShards(64)])
      expect(shardOfConsumer(s.consumer)).toEqual(s);
    expect(shardOfConsumer('landing')).toBeNull();
    expect(shardOfConsumer('redis-online-store/5of4')).toBeNull();
    expect(() => drainShard(0, 65)).toThrow(RangeError);
    expect(() => drainShard(4, 4)).toThrow(RangeError);
  });

  it('the shards of any count own every partition exactly once, and a shard view holds only its own', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 64 }), (partitions, shards) => {
        fc.pre(shards <= partitions);
        const keys = storeKeys('u:', partitions);
        const owned = drainShards(shards).flatMap((s) => ownedPartitions(keys, s).map((p) => p.index));
        expect(owned.sort((a, b) => a - b)).toEqual(keys.partitions.map((p) => p.index));
        for (const s of drainShards(shards)) {
          const view = shardKeys(keys, s);
          expect(view.count).toBe(partitions);
          expect(view.partitions.every((p) => p.index % shards === s.index)).toBe(true);
          expect(shardKeys(keys, s)).toBe(view); // one object per shard
          expect(shardRoutes(keys, s)).toEqual(shards === 1 ? null : [-1, ...view.partitions.map((p) => p.index)]);
        }
      }),
    );
    expect(() => shardKeys(storeKeys('u:', 2), drainShard(0, 4))).toThrow(/more than the store's 2 partition/);
  });

  it('the earliest of snapshots taken one after another is the one every other covers', () => {
    expect(earliestSnapshot(['100:120:105,110', '90:95:', '100:130:'])).toBe('90:95:');
    expect(earliestSnapshot(['100:120:105', '100:120:'])).toBe('100:120:105');
    expect(() => earliestSnapshot([])).toThrow();
  });

  it('a shard delta reads its routes only, and refuses anything but integers', () => {
    const sql = shardDeltaSql([-1, 1, 5]);
    expect(sql).toContain('o.route in (-1, 1, 5)');
    expect(sql.match(/where o\.route = /g)).toHaveLength(3);
    expect(() => shardDeltaSql([1.5])).toThrow();
    expect(() => shardDeltaSql([])).toThrow();
  });
});
