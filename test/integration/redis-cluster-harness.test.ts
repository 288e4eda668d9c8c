/**
 * The local Redis Cluster harness (scripts/lib/redis-cluster.ts) on the machine's own
 * redis-server: 3 masters with a replica each; an ioredis Cluster client writes keys over every
 * master, a master is killed and its replica promoted, the same client writes and reads again, and
 * the killed node rejoins as a replica.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalRedisCluster, startLocalRedisCluster } from '../../scripts/lib/redis-cluster';
import { createStoreRedis, readyMasterNodes } from '../../store/redis-client';

const KEYS = Array.from({ length: 200 }, (_, i) => `harness:{k${i}}`);

let dir: string;
let cluster: LocalRedisCluster;
let client: Cluster;

async function keysOn(port: number): Promise<number> {
  const r = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await r.connect();
    return await r.dbsize();
  } finally {
    r.disconnect();
  }
}

async function writeAndReadAll(tag: string): Promise<void> {
  await Promise.all(KEYS.map((k) => client.set(k, `${tag}:${k}`)));
  const values = await Promise.all(KEYS.map((k) => client.get(k)));
  expect(values).toEqual(KEYS.map((k) => `${tag}:${k}`));
}

describe('local Redis Cluster harness', () => {
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'redis-cluster-'));
    const t0 = Date.now();
    cluster = await startLocalRedisCluster({ dir, masters: 3, replicasPerMaster: 1 });
    console.log(`cluster healthy ${Date.now() - t0} ms after start: ${cluster.seeds.join(',')}`);
    client = new Cluster(cluster.seeds);
  }, 30_000);

  afterAll(async () => {
    client?.disconnect();
    await cluster?.stop();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('serves keys over every master', async () => {
    expect(cluster.ports).toHaveLength(6);
    expect(cluster.seeds).toEqual(cluster.ports.map((p) => `127.0.0.1:${p}`));
    const masters = await cluster.masters();
    expect(masters).toHaveLength(3);
    expect(masters).toEqual(cluster.ports.slice(0, 3)); // masters first, as created
    expect(await cluster.replicas()).toEqual(cluster.ports.slice(3));

    await writeAndReadAll('before');
    for (const m of masters) expect(await keysOn(m)).toBeGreaterThan(0); // spread over slots of every master
  });

  // Before its slot map is in, a cluster client lists its seeds as masters; then it disconnects the
  // replicas among them, and a command sent to one meanwhile failed ("Connection is closed": a
  // test file's first reset, and a worker's eviction check at its start).
  it('a client just created, seeded with a replica, lists the masters once it has the slot map (readyMasterNodes)', async () => {
    const [replica] = await cluster.replicas();
    const fresh = createStoreRedis({ REDIS_URL: 'redis://127.0.0.1:1', REDIS_CLUSTER_NODES: `127.0.0.1:${replica}` });
    try {
      const nodes = await readyMasterNodes(fresh);
      expect(nodes.map((n) => n.options.port).sort()).toEqual((await cluster.masters()).slice().sort());
      expect(await Promise.all(nodes.map((n) => n.ping()))).toEqual(nodes.map(() => 'PONG'));
    } finally {
      fresh.disconnect();
    }
  });

  it('fails a master over to its replica; the same client writes and reads again', async () => {
    const [victim] = await cluster.masters();
    const t0 = Date.now();
    const promoted = await cluster.failOver(victim, { timeoutMs: 15_000 });
    console.log(`failover of ${victim}: replica ${promoted} promoted, cluster ok after ${Date.now() - t0} ms`);

    const masters = await cluster.masters();
    expect(masters).toHaveLength(3);
    expect(masters).not.toContain(victim);
    expect(masters).toContain(promoted);
    expect(cluster.nodes().find((n) => n.port === victim)?.alive).toBe(false);

    // The data written before is still there (it was replicated), and new writes land.
    expect(await Promise.all(KEYS.map((k) => client.get(k)))).toEqual(KEYS.map((k) => `before:${k}`));
    await writeAndReadAll('after-failover');
  });

  it('restarts the killed master, which rejoins as a replica', async () => {
    const masters = await cluster.masters();
    const victim = cluster.ports.find((p) => !masters.includes(p) && !cluster.nodes().find((n) => n.port === p)?.alive);
    expect(victim).toBeDefined();
    const t0 = Date.now();
    await cluster.restart(victim!);
    await cluster.waitHealthy({ replicasConnected: true, timeoutMs: 15_000 });
    console.log(`node ${victim} restarted and replicating after ${Date.now() - t0} ms`);

    expect(await cluster.replicas()).toContain(victim);
    expect(await cluster.masters()).toEqual(masters);
    await writeAndReadAll('after-rejoin');
  });
});
