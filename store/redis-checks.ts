/**
 * Start-up checks of the Redis that holds the online store.
 *
 * Eviction: the store keeps keys with TTLs (load counters, tombstoned SKUs) and keys without. A
 * `volatile-*` policy evicts the former under memory pressure, an `allkeys-*` policy any key; an
 * evicted load counter reads as 0 (a full FC looks free), an evicted tombstone lets a late older
 * change bring a deleted SKU back, an evicted field version lets an older value win. None of that
 * is noticed. Only `noeviction` (writes fail loudly when memory runs out, the drain retries) is
 * safe, so anything else is refused unless REDIS_EVICTION_CHECK=warn says the operator knows.
 */
import type { Redis } from 'ioredis';
import { ConfigurationError } from '../config';
import { readyMasterNodes, StoreRedis } from './redis-client';
import { logger } from '../log/logger';

export async function evictionPolicy(redis: Redis): Promise<string> {
  try {
    const r = (await redis.call('CONFIG', 'GET', 'maxmemory-policy')) as string[];
    if (r.length >= 2) return r[1];
  } catch {
    // CONFIG may be disabled (managed Redis, ACL): INFO says it too
  }
  const info = await redis.info('memory');
  const m = /maxmemory_policy:(\S+)/.exec(info);
  if (!m) throw new Error('cannot read StoreRedis maxmemory-policy (neither CONFIG GET nor INFO memory answered it)');
  return m[1];
}

/**
 * Refuses (or, with mode 'warn', warns about) a policy that can evict pipeline keys, on every
 * master of a cluster.
 */
export async function checkEvictionPolicy(
  redis: StoreRedis,
  mode: 'refuse' | 'warn',
  log: (m: string) => void = (m) => logger('store').warn(m),
): Promise<string> {
  const nodes = await readyMasterNodes(redis); // at a worker's start: its client just created
  const policies = await Promise.all(nodes.map((node) => evictionPolicy(node)));
  const bad = policies.findIndex((p) => p !== 'noeviction');
  if (bad < 0) return 'noeviction';
  const policy = policies[bad];
  const where = nodes.length > 1 ? ` on ${nodes[bad].options.host}:${nodes[bad].options.port}` : '';
  const why =
    `StoreRedis maxmemory-policy is '${policy}'${where}: it can evict online-store keys silently (an evicted load counter reads as 0, ` +
    `an evicted tombstone or version lets an old value back), so reads could claim fresh while wrong. ` +
    `Set 'maxmemory-policy noeviction' (redis.conf or CONFIG SET) and size maxmemory for the catalogue, ` +
    `or set REDIS_EVICTION_CHECK=warn to run anyway.`;
  if (mode === 'refuse') throw new ConfigurationError(why);
  log(`warning: ${why}`);
  return policy;
}
