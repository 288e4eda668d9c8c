/**
 * The online store's Redis connection: one Redis, or a Redis Cluster (REDIS_CLUSTER_NODES), behind
 * the same code path. The store keeps every multi-key call inside one partition (one hash slot,
 * store/keys.ts); what differs on a cluster is handled here:
 *   - pipelines: a cluster pipeline may only hold commands for one node, so commands are grouped
 *     by the node that serves their slot, one pipeline per node, all nodes in parallel;
 *   - SCAN and server-wide commands (INFO, CONFIG) go to every master.
 */
import { Cluster, Redis, RedisOptions } from 'ioredis';
import calculateSlot from 'cluster-key-slot';
import type { Config } from '../config';
import { redactUrl } from '../config/redact';

export type StoreRedis = Redis | Cluster;

export const isCluster = (redis: StoreRedis): redis is Cluster => redis instanceof Cluster;

/** `host:port` or a redis:// URL, as REDIS_CLUSTER_NODES lists them. */
export function parseClusterNodes(
  list: string,
): { host: string; port: number; username?: string; password?: string }[] {
  return list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((seed) => {
      const u = new URL(seed.includes('://') ? seed : `redis://${seed}`);
      return {
        host: u.hostname,
        port: Number(u.port || 6379),
        username: u.username ? decodeURIComponent(u.username) : undefined,
        password: u.password ? decodeURIComponent(u.password) : undefined,
      };
    });
}

/**
 * The store's client: a Cluster when REDIS_CLUSTER_NODES is set, else one Redis from REDIS_URL.
 * `options` are a single Redis's; on a cluster they apply to every node's connection, and
 * `retryStrategy`, `lazyConnect` and `enableOfflineQueue` to the cluster client itself.
 */
export function createStoreRedis(
  config: Pick<Config, 'REDIS_URL' | 'REDIS_CLUSTER_NODES'>,
  options: RedisOptions = {},
): StoreRedis {
  if (!config.REDIS_CLUSTER_NODES) return new Redis(config.REDIS_URL, options);
  const seeds = parseClusterNodes(config.REDIS_CLUSTER_NODES);
  const auth = seeds.find((s) => s.password !== undefined);
  const { retryStrategy, lazyConnect, enableOfflineQueue, ...nodeOptions } = options;
  return new Cluster(
    seeds.map(({ host, port }) => ({ host, port })),
    {
      lazyConnect,
      enableOfflineQueue,
      // a failover takes a few seconds: keep asking for the new slot map meanwhile
      clusterRetryStrategy: (times) => retryStrategy?.(times) ?? Math.min(100 * times, 2000),
      slotsRefreshTimeout: 2000,
      redisOptions: { ...nodeOptions, username: auth?.username, password: auth?.password },
    },
  );
}

/** Where the store is, for messages (credentials never shown). */
export function describeStoreRedis(config: Pick<Config, 'REDIS_URL' | 'REDIS_CLUSTER_NODES'>): string {
  if (!config.REDIS_CLUSTER_NODES) return redactUrl(config.REDIS_URL);
  return `the Redis Cluster at ${parseClusterNodes(config.REDIS_CLUSTER_NODES)
    .map((n) => `${n.host}:${n.port}`)
    .join(',')}`;
}

/** Every master of the store (the one Redis, or each master of the cluster). */
export function masterNodes(redis: StoreRedis): Redis[] {
  return isCluster(redis) ? redis.nodes('master') : [redis];
}

/**
 * The masters, once a cluster client has its slot map. Until then its nodes are the seeds, every
 * one listed as a master; the map then disconnects those it shows to be replicas, and a command
 * sent to one meanwhile fails with "Connection is closed". For a client just created.
 */
export async function readyMasterNodes(redis: StoreRedis): Promise<Redis[]> {
  // a cluster command waits in the offline queue until the slot map is in (and connects a lazy client)
  if (isCluster(redis) && redis.status !== 'ready') await redis.ping();
  return masterNodes(redis);
}

/** SCAN for `match` over every master, in pages. */
export async function* scanKeys(redis: StoreRedis, match: string, count = 1000): AsyncGenerator<string[]> {
  for (const node of masterNodes(redis)) {
    for await (const page of node.scanStream({ match, count }) as AsyncIterable<string[]>) {
      if (page.length) yield page;
    }
  }
}

type Pipeline = ReturnType<Redis['pipeline']>;

/** Replies that say the command did not run on that node, because the slot map changed under us. */
const REDIRECTED = /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN)\b/;

/**
 * Runs one command per item, each on the node that serves `keyOf(item)`: one pipeline per node,
 * all nodes at once. Replies come back in item order, as [error, reply] like `exec()`.
 *
 * After a failover or a resharding, the client's slot map is stale until refreshed: commands that
 * a node refused as not its own (MOVED, ASK) or not yet servable (TRYAGAIN, CLUSTERDOWN) did not
 * run, so they are sent again, alone, after the map is refreshed (a few times, with a short pause).
 */
export async function pipelineByNode<T>(
  redis: StoreRedis,
  items: readonly T[],
  keyOf: (item: T) => string,
  add: (pipeline: Pipeline, item: T) => void,
): Promise<[Error | null, unknown][]> {
  const out: [Error | null, unknown][] = new Array(items.length);
  let todo = items.map((_, i) => i);
  for (let attempt = 0; ; attempt++) {
    const again: number[] = [];
    const replies = await pipelinesOnce(
      redis,
      todo.map((i) => items[i]),
      keyOf,
      add,
    );
    replies.forEach((r, n) => {
      if (r[0] && isCluster(redis) && REDIRECTED.test(r[0].message) && attempt < 8) again.push(todo[n]);
      else out[todo[n]] = r;
    });
    if (again.length === 0 || !isCluster(redis)) return out;
    await new Promise<void>((resolve) => redis.refreshSlotsCache(() => resolve()));
    await new Promise((resolve) => setTimeout(resolve, Math.min(50 * 2 ** attempt, 1000)));
    todo = again;
  }
}

async function pipelinesOnce<T>(
  redis: StoreRedis,
  items: readonly T[],
  keyOf: (item: T) => string,
  add: (pipeline: Pipeline, item: T) => void,
): Promise<[Error | null, unknown][]> {
  const groups = new Map<string, number[]>();
  if (!isCluster(redis))
    groups.set(
      '',
      items.map((_, i) => i),
    );
  else {
    for (const [i, item] of items.entries()) {
      const slot = calculateSlot(keyOf(item));
      // the slot's node set as the client knows it; unknown yet: a pipeline of its own slot
      const group = redis.slots[slot]?.join(',') ?? `slot:${slot}`;
      const list = groups.get(group);
      if (list) list.push(i);
      else groups.set(group, [i]);
    }
  }
  const out: [Error | null, unknown][] = new Array(items.length);
  await Promise.all(
    [...groups.values()].map(async (indexes) => {
      const p = redis.pipeline() as Pipeline;
      for (const i of indexes) add(p, items[i]);
      const replies = await p.exec();
      if (!replies) throw new Error('redis pipeline was discarded');
      replies.forEach((r, n) => (out[indexes[n]] = r));
    }),
  );
  return out;
}

/**
 * One command per partition (or any list of items), each on its node: the replies, in order;
 * the first error is raised (the caller's activity retries, and every store write is idempotent).
 */
export async function onEachNode<T>(
  redis: StoreRedis,
  items: readonly T[],
  keyOf: (item: T) => string,
  add: (pipeline: Pipeline, item: T) => void,
): Promise<unknown[]> {
  const replies = await pipelineByNode(redis, items, keyOf, add);
  return replies.map(([err, reply]) => {
    if (err) throw err;
    return reply;
  });
}
