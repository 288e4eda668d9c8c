/** A store written by layout 1 (lifecycle in "_", a valid FC id) is emptied once, for backfill-auto to rebuild. */
import { afterAll, describe, expect, it } from 'vitest';
import { upgradeStoreLayout } from '../../store/layout';
import { LIFECYCLE_FIELD } from '../../store/keys';
import { testClients } from '../support/env';

const c = testClients();
afterAll(() => c.close());

describe('store layout', () => {
  it('empties a layout-1 store once (reads go stale: no epoch), and leaves a current one alone', async () => {
    await c.redis.flushdb();
    await c.redis.set(c.keys.legacyEpoch, 'old');
    await c.redis.hset(c.keys.sku('S1'), '_', 'a|1', 'F1', '3|2');
    await c.redis.hset(c.keys.meta, 'caughtUpAt', String(Date.now()));
    const logs: string[] = [];
    expect(await upgradeStoreLayout(c.redis, c.keys, (m) => logs.push(m))).toBe(true);
    expect(logs[0]).toMatch(/older layout/);
    expect(await c.redis.dbsize()).toBe(0);

    await c.redis.set(c.keys.epoch, 'current');
    await c.redis.hset(c.keys.sku('S1'), LIFECYCLE_FIELD, 'a|1');
    expect(await upgradeStoreLayout(c.redis, c.keys)).toBe(false);
    expect(await c.redis.hget(c.keys.sku('S1'), LIFECYCLE_FIELD)).toBe('a|1');
  });
});
