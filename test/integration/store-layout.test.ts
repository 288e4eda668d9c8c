/** A store written by layout 1 (lifecycle in "_", a valid FC id) is emptied once, for backfill-auto to rebuild. */
import { afterAll, describe, expect, it } from 'vitest';
import { upgradeStoreLayout } from '../../store/layout';
import { LIFECYCLE_FIELD, storeKeys } from '../../store/keys';
import { testClients } from '../support/env';
import { FIELD } from '../../store/names';
import { FENCE_PENDING } from '../../store/fence';

const c = testClients();
afterAll(() => c.close());

describe('store layout', () => {
  it('empties a layout-1 store once (reads go stale: no epoch), and leaves a current one alone', async () => {
    await c.redis.flushdb();
    await c.redis.set(c.keys.legacyEpoch, 'old');
    await c.redis.hset(c.keys.sku('S1'), '_', 'a|1', 'F1', '3|2');
    await c.redis.hset(c.keys.partitions[0].meta, FIELD.caughtUpAt, String(Date.now()));
    const logs: string[] = [];
    expect(await upgradeStoreLayout(c.redis, c.keys, (m) => logs.push(m))).toBe(true);
    expect(logs[0]).toMatch(/older layout/);
    // only the record of how many partitions the store has, and the fences: pending, no snapshot
    // is known to see the deletions forgotten (the drain's next batch sets them)
    expect((await c.redis.keys('*')).sort()).toEqual(
      [c.keys.partitionCount, ...c.keys.partitions.map((p) => p.fence)].sort(),
    );
    for (const p of c.keys.partitions) expect(await c.redis.get(p.fence)).toBe(FENCE_PENDING);

    await c.redis.set(c.keys.partitions[0].epoch, 'current');
    await c.redis.hset(c.keys.sku('S1'), LIFECYCLE_FIELD, 'a|1');
    expect(await upgradeStoreLayout(c.redis, c.keys)).toBe(false);
    expect(await c.redis.hget(c.keys.sku('S1'), LIFECYCLE_FIELD)).toBe('a|1');
  });

  it('empties a store built with another number of partitions (STORE_PARTITIONS changed), and records the new one', async () => {
    await c.redis.flushdb();
    const one = storeKeys('fbt:', 1);
    const four = storeKeys('fbt:', 4);
    // a store from before partitions: no record, one partition
    await c.redis.set(one.partitions[0].epoch, 'one');
    await c.redis.hset(one.sku('S1'), LIFECYCLE_FIELD, 'a|1');
    expect(await upgradeStoreLayout(c.redis, one)).toBe(false);
    expect(await c.redis.get(one.partitionCount)).toBe('1');

    const logs: string[] = [];
    expect(await upgradeStoreLayout(c.redis, four, (m) => logs.push(m))).toBe(true);
    expect(logs[0]).toMatch(/built with 1 partition\(s\), STORE_PARTITIONS is now 4/);
    expect((await c.redis.keys('*')).sort()).toEqual(
      [four.partitionCount, ...four.partitions.map((p) => p.fence)].sort(),
    );
    for (const p of four.partitions) expect(await c.redis.get(p.fence)).toBe(FENCE_PENDING);
    expect(await c.redis.get(four.partitionCount)).toBe('4');
    expect(await upgradeStoreLayout(c.redis, four)).toBe(false);
  });
});
