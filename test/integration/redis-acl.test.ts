/**
 * Redis users (issue 12): on a redis-server of this test's own with ACL users as docs/operations.md sets
 * them up, the worker (only its key prefix, no dangerous commands) runs the drain and its start-up
 * checks, and the read API's user (read commands and read-only scripts only) serves badges equal
 * to the SQL rule, and can write nothing.
 */
import type { ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activitiesFor } from '../support/activities';
import { compareSnapshots } from '../../reconcile/compare';
import { sourceBadges } from '../../reconcile/source-badges';
import { sourceFeatures } from '../../reconcile/source-features';
import { storeFeatures } from '../../reconcile/store-features';
import { createBadgeReader } from '../../serving/badge-reader';
import { checkEvictionPolicy } from '../../store/redis-checks';
import { setEpoch } from '../../store/watermark';
import { pipelineClients, resetState, testClients } from '../support/env';
import { freePort, startRedisServer, stopProcess } from '../support/redis-process';
import { seedMinimal } from '../support/source';

const c = testClients();
let server: ChildProcess;
let admin: Redis;
let worker: Redis;
let reader: Redis;

// The ACL set-up of docs/operations.md, for the test prefix.
const ACL_WORKER = [
  'fb_worker',
  'on',
  '>worker-secret',
  'resetkeys',
  '~fbt:*',
  'resetchannels',
  '+@all',
  '-@dangerous',
  '+config|get',
  '+info',
];
const ACL_READER = [
  'fb_reader',
  'on',
  '>reader-secret',
  'resetkeys',
  '~fbt:*',
  'resetchannels',
  '-@all',
  '+evalsha_ro',
  '+eval_ro',
  '+hget',
  '+hmget',
  '+hgetall',
  '+exists',
  '+sismember',
  '+time',
  '+ping',
];

beforeAll(async () => {
  const port = await freePort();
  server = await startRedisServer(port);
  admin = new Redis({ port });
  await admin.call('ACL', 'SETUSER', ...ACL_WORKER);
  await admin.call('ACL', 'SETUSER', ...ACL_READER);
  worker = new Redis(`redis://fb_worker:worker-secret@127.0.0.1:${port}/0`);
  reader = new Redis(`redis://fb_reader:reader-secret@127.0.0.1:${port}/0`);
  await resetState(c);
});
afterAll(async () => {
  worker?.disconnect();
  reader?.disconnect();
  admin?.disconnect();
  await stopProcess(server);
  await c.close();
});

const noperm = (p: Promise<unknown>) => expect(p).rejects.toThrow(/NOPERM/);

describe('Redis ACL users', () => {
  it('the worker drains with only its prefix; the reader reads badges and can write nothing', async () => {
    expect(await checkEvictionPolicy(worker, 'refuse')).toBe('noeviction');
    const acts = activitiesFor({ ...pipelineClients(c), redis: worker });
    await setEpoch(worker, c.keys, 'acl-test');
    await acts.acquireDrainLease({ owner: 'acl-test' });
    await seedMinimal(c.pool);
    for (;;) if ((await acts.drainBatch({ owner: 'acl-test' })).outcome === 'idle') break;
    expect(compareSnapshots(await sourceFeatures(c.pool), await storeFeatures(worker, c.keys))).toEqual([]);

    const badges = createBadgeReader({
      redis: reader,
      prefix: c.keys.prefix,
      partitions: c.keys.partitions.length,
      staleAfterMs: 60_000,
    });
    const answer = await badges.getBadges('R1', ['S1', 'S2']);
    expect(answer.badges).toEqual(await sourceBadges(c.pool, 'R1', ['S1', 'S2']));
    expect(answer.stale).toBe(false);
    // a dead letter waiting (store/held.ts): the reader's user still reads, now unknown and stale
    await worker.hset(c.keys.ofSku('S1').held, 's:S1', String(Date.now()));
    for (const p of c.keys.partitions) await worker.hset(p.held, 'f:F1', String(Date.now()));
    const held = await badges.getBadges('R1', ['S1', 'S2']);
    expect(held.badges[0]!.reason).toBe('unknown');
    expect(held.stale).toBe(true);
    for (const p of c.keys.partitions) await worker.del(p.held);

    await noperm(reader.hset(c.keys.sku('S1'), 'F1', '999|1'));
    await noperm(reader.eval(`return redis.call('HSET', KEYS[1], 'F1', '999|1')`, 1, c.keys.sku('S1')));
    await expect(
      reader.eval_ro(`return redis.call('HSET', KEYS[1], 'F1', '999|1')`, 1, c.keys.sku('S1')),
    ).rejects.toThrow();
    await noperm(worker.set('someone-else:key', '1'));
    await noperm(worker.flushall());
    await noperm(worker.call('CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lru'));
    expect(await admin.hget(c.keys.sku('S1'), 'F1')).toMatch(/^10\|/);
  });
});
