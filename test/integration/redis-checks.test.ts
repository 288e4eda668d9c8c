/** Start-up refuses a Redis whose eviction policy could silently drop store keys. */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkEvictionPolicy } from '../../store/redis-checks';
import { freePort, startRedisServer, stopProcess } from '../support/redis-process';
import { sharedTestServer, testConfig } from '../support/env';
import { exited, spawnWorker } from '../support/worker-process';

let server: Awaited<ReturnType<typeof startRedisServer>>;
let port: number;
let redis: Redis;
beforeAll(async () => {
  port = await freePort();
  server = await startRedisServer(port);
  redis = new Redis(`redis://127.0.0.1:${port}/0`);
});
afterAll(async () => {
  redis.disconnect();
  await stopProcess(server);
});

describe('Redis eviction policy', () => {
  it('accepts noeviction and refuses every policy that can evict, unless told to warn', async () => {
    await redis.call('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
    expect(await checkEvictionPolicy(redis, 'refuse')).toBe('noeviction');
    for (const policy of ['volatile-lru', 'volatile-ttl', 'allkeys-lru', 'allkeys-random']) {
      await redis.call('CONFIG', 'SET', 'maxmemory-policy', policy);
      await expect(checkEvictionPolicy(redis, 'refuse')).rejects.toMatchObject({
        name: 'ConfigurationError',
        message: expect.stringContaining(`'${policy}'`),
      });
      const warnings: string[] = [];
      expect(await checkEvictionPolicy(redis, 'warn', (m) => warnings.push(m))).toBe(policy);
      expect(warnings[0]).toMatch(/noeviction/);
    }
  });

  it('the worker will not start on such a Redis, with a message that says what to do', async () => {
    await redis.call('CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lru');
    const { address, bundlePath } = sharedTestServer();
    const worker = spawnWorker(testConfig({ REDIS_URL: `redis://127.0.0.1:${port}/0` }), address, bundlePath);
    let stderr = '';
    worker.stderr?.on('data', (d) => (stderr += d));
    await exited(worker);
    expect(worker.exitCode).toBe(1);
    expect(stderr).toMatch(/maxmemory-policy is 'allkeys-lru'.*noeviction/s);
  });
});
