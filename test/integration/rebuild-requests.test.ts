/**
 * A rebuild request survives the worker dying right after the cursor commit of the batch that
 * reactivated a SKU whose tombstone had expired (issue 11): the request was recorded in the store
 * with the lifecycle, so the next worker's drain starts the rebuild and the stock comes back.
 */
import { describe, expect, it } from 'vitest';
import { usePipeline } from '../support/pipeline-fixture';
import { compareSnapshots } from '../../reconcile/compare';
import { sourceFeatures } from '../../reconcile/source-features';
import { storeFeatures } from '../../reconcile/store-features';
import { eventually, resetState, sharedTestServer, startDrain, temporalClient } from '../support/env';
import { exited, spawnWorker } from '../support/worker-process';
import { storeKeys } from '../../store/keys';
import { pendingRebuilds } from '../../store/rebuild-requests';

const { c, acts } = usePipeline('rebuild-req', {
  config: { TEMPORAL_TASK_QUEUE: `rebuild-req-${process.pid}`, TOMBSTONE_TTL_S: '1' },
});
const { address, bundlePath } = sharedTestServer();

async function drainAll() {
  for (;;) if ((await acts.drainBatch({ owner: 'rebuild-test' })).outcome === 'idle') return;
}

describe('rebuild requests', () => {
  it('the worker killed after committing the reactivation: the next worker still rebuilds the SKU', async () => {
    await resetState(c);
    await acts.acquireDrainLease({ owner: 'rebuild-test' });
    await c.pool.query(`insert into shop.fulfillment_centers values ('F1', 'R1', 100, now())`);
    await c.pool.query(`insert into shop.region_fc values ('R1', 'F1', 1)`);
    await c.pool.query(`insert into shop.skus (sku_id, title, lifecycle) values ('RQ1', 't', 'active')`);
    await c.pool.query(`insert into shop.inventory values ('RQ1', 'F1', 5, 0, now())`);
    await drainAll();
    await c.pool.query(`update shop.skus set lifecycle = 'discontinued' where sku_id = 'RQ1'`);
    await drainAll();
    await eventually(async () => (await c.redis.exists(c.keys.sku('RQ1'))) === 0, 10_000, 'the tombstone to expire');
    await acts.releaseDrainLease({ owner: 'rebuild-test' });

    const temporal = await temporalClient(address);
    let worker = spawnWorker(c.config, address, bundlePath, { FRESH_BADGES_FAULT: 'kill-after-commit:1' });
    const run = await startDrain(temporal.client, c.config, {
      taskQueue: c.config.TEMPORAL_TASK_QUEUE,
      workflowId: `drain-rebuild-req-${Date.now()}`,
      args: [{ intervalMs: 3_600_000, idleWaitMs: 200 }],
    });
    try {
      await c.pool.query(`update shop.skus set lifecycle = 'active' where sku_id = 'RQ1'`);
      await exited(worker); // died right after committing the reactivation
      expect(worker.signalCode).toBe('SIGKILL');
      expect(await c.redis.smembers(c.keys.ofSku('RQ1').rebuilds)).toEqual(['RQ1']);
      expect(await c.redis.hget(c.keys.sku('RQ1'), 'F1')).toBeNull(); // stock not rebuilt yet

      worker = spawnWorker(c.config, address, bundlePath);
      await eventually(
        async () => (await c.redis.hget(c.keys.sku('RQ1'), 'F1'))?.startsWith('5|'),
        30_000,
        'the stock to be rebuilt',
      );
      await eventually(
        async () => (await c.redis.scard(c.keys.ofSku('RQ1').rebuilds)) === 0,
        10_000,
        'the request to be cleared',
      );
      expect(compareSnapshots(await sourceFeatures(c.pool), await storeFeatures(c.redis, c.keys))).toEqual([]);
    } finally {
      await run.terminate('test over').catch(() => undefined);
      // A rebuild the drain started once more before its request was cleared must not outlive
      // this test's workers (workflow ids are shared across the test run).
      await temporal.client.workflow
        .getHandle('sku-rebuild-RQ1')
        .terminate('test over')
        .catch(() => undefined);
      worker.kill('SIGTERM');
      await exited(worker);
      await temporal.close();
    }
  });

  // The drain starts at most 50 pending requests at a time: a partition with hundreds pending (a
  // mass reactivation) must not keep another partition's waiting, those SKUs reading unknown.
  it('pending requests are taken from every partition in turn', async () => {
    const keys = storeKeys(`${c.keys.prefix}rr:`, 4);
    const skusIn = (p: number, n: number) => {
      const out: string[] = [];
      for (let i = 0; out.length < n; i++) if (keys.ofSku(`P${i}`) === keys.partitions[p]) out.push(`P${i}`);
      return out;
    };
    const crowded = skusIn(0, 200);
    const lone = skusIn(3, 1);
    await c.redis.sadd(keys.partitions[0]!.rebuilds, ...crowded);
    await c.redis.sadd(keys.partitions[3]!.rebuilds, ...lone);
    try {
      const pending = await pendingRebuilds(c.redis, keys, 50);
      expect(pending).toHaveLength(50);
      expect(pending).toContain(lone[0]);
    } finally {
      for (const p of keys.partitions) await c.redis.del(p.rebuilds);
    }
  });

  // One UPDATE reactivating many SKUs discontinued long ago: the drain reports a bounded number of
  // them for the workflow to start, and every request stays recorded for the next lookups.
  it('a mass reactivation reports at most 50 rebuilds per drain call (per shard) and records them all', async () => {
    await resetState(c);
    await acts.acquireDrainLease({ owner: 'rebuild-test' });
    await c.pool.query(
      `insert into shop.skus (sku_id, title, lifecycle) select 'M' || g, 't', 'discontinued' from generate_series(1, 120) g`,
    );
    await drainAll();
    for (let g = 1; g <= 120; g++) await c.redis.del(c.keys.sku(`M${g}`)); // their tombstones ran out
    await c.pool.query(`update shop.skus set lifecycle = 'active' where sku_id like 'M%'`);
    const reported = new Set<string>();
    for (;;) {
      const r = await acts.drainBatch({ owner: 'rebuild-test' });
      // (the test's drainBatch drains every shard at once: each reports its own)
      expect((r.rebuildSkus ?? []).length).toBeLessThanOrEqual(50 * c.config.DRAIN_SHARDS);
      for (const sku of r.rebuildSkus ?? []) reported.add(sku);
      if (r.outcome === 'idle') break;
    }
    expect(reported.size).toBeGreaterThan(0);
    let recorded = 0;
    for (const p of c.keys.partitions) recorded += await c.redis.scard(p.rebuilds);
    expect(recorded).toBe(120);
    for (const p of c.keys.partitions) await c.redis.del(p.rebuilds);
    await acts.releaseDrainLease({ owner: 'rebuild-test' });
  });
});
