/**
 * A Redis "file" in a test: every key of a store with its TTL, taken with DUMP and put back with
 * RESTORE, as a Redis restarted from an RDB or AOF file written at that moment would hold them
 * (on a cluster, node by node).
 */
import type { StoreKeys } from '../../store/keys';
import { masterNodes, type StoreRedis } from '../../store/redis-client';

export type StoreFile = Map<string, { ttl: number; value: Buffer }>;

/** Every key of the store with its TTL, as a Redis file written now would hold them. */
export async function dumpStore(redis: StoreRedis, keys: StoreKeys): Promise<StoreFile> {
  const out: StoreFile = new Map();
  for (const node of masterNodes(redis))
    for await (const batch of node.scanStream({ match: `${keys.prefix}*`, count: 1000 }))
      for (const key of batch as string[]) {
        const value = await node.dumpBuffer(key);
        if (value) out.set(key, { ttl: Math.max(0, await node.pttl(key)), value });
      }
  return out;
}

/** Replaces the store with what dumpStore saw: Redis back from that file. */
export async function restoreStore(redis: StoreRedis, keys: StoreKeys, file: StoreFile): Promise<void> {
  for (const node of masterNodes(redis))
    for await (const batch of node.scanStream({ match: `${keys.prefix}*`, count: 1000 }))
      for (const key of batch as string[]) await node.del(key);
  for (const [key, { ttl, value }] of file) await redis.restore(key, ttl, value, 'REPLACE');
}
