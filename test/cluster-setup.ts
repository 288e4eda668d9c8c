/**
 * For the cluster run (vitest.cluster.config.mts): a real local Redis Cluster, 3 masters with a
 * replica each, from the machine's redis-server, on free ports. Every test file of the run gets
 * its seed nodes (test/support/env.ts, testClusterNodes) and uses it as the online store.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { LocalRedisCluster, startLocalRedisCluster } from '../scripts/lib/redis-cluster';

let cluster: LocalRedisCluster | undefined;
let dir: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fb-test-cluster-'));
  cluster = await startLocalRedisCluster({ dir, masters: 3, replicasPerMaster: 1 });
  const provide = project.provide as (key: string, value: string) => void;
  provide('redisClusterNodes', cluster.seeds.join(','));
}

export async function teardown(): Promise<void> {
  await cluster?.stop();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
}
