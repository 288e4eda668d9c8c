/**
 * A SKU whose stock is being rebuilt (reactivated after its key expired: store/lua/apply.lua raises
 * the request in {p}rebuilds) has no stock in the store, or none of the source's, until the
 * rebuild's rows are applied. Its badge reads `unknown` meanwhile, never out_of_stock or eligible
 * from that stock; the rest of the answer is read as always. The drain is driven by hand here, so
 * the request stays pending for as long as the test needs: the rebuild clears it only once the
 * drain has applied the rows it re-emitted, never between the re-emission and the apply.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { createBadgeReader } from '../../serving/badge-reader';
import { usePipeline } from '../support/pipeline-fixture';
import { createActivities } from '../../activities';
import { pipelineClients, resetState } from '../support/env';
import { captured } from '../support/logical-run';

const owner = 'rebuild-pending-read';
const { c, acts } = usePipeline('rebuild-pending-read');

/** finishSkuRebuild as its workflow runs it: attempts retried while the drain has not applied the rows. */
async function finishRebuild(sku: string, snapshot: string): Promise<void> {
  for (;;)
    try {
      return await acts.finishSkuRebuild({ sku, snapshot });
    } catch (err) {
      if (!(err instanceof Error && /has not yet applied/.test(err.message))) throw err;
    }
}

describe('reads while a SKU is being rebuilt', () => {
  it('answer that SKU unknown and the others as usual, until the request is done', async () => {
    await resetState(c);
    await acts.acquireDrainLease({ owner });
    await c.pool.query(`insert into shop.fulfillment_centers values ('F1', 'R1', 100, now())`);
    await c.pool.query(`insert into shop.region_fc values ('R1', 'F1', 1)`);
    await c.pool.query(
      `insert into shop.skus (sku_id, title, lifecycle) values ('A', 't', 'active'), ('B', 't', 'active')`,
    );
    await c.pool.query(`insert into shop.inventory values ('A', 'F1', 5, 0, now()), ('B', 'F1', 5, 0, now())`);
    await captured();
    for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') break;
    const reader = createBadgeReader({
      redis: c.redis,
      prefix: c.keys.prefix,
      partitions: c.keys.partitions.length,
      staleAfterMs: 3_600_000,
    });
    const reasons = async () => (await reader.getBadges('R1', ['A', 'B'])).badges.map((b) => b.reason);
    expect(await reasons()).toEqual(['eligible', 'eligible']);

    // the drain raised A's rebuild (as it does when A comes back with its stock gone)
    await c.redis.sadd(c.keys.ofSku('A').rebuilds, 'A');
    const pending = await reader.getBadges('R1', ['A', 'B']);
    expect(pending.badges.map((b) => [b.reason, b.eligible])).toEqual([
      ['unknown', false],
      ['eligible', true],
    ]);
    expect(pending.stale).toBe(false); // B's answer is as fresh as ever

    // the rebuild re-emits A's rows; until the drain has applied them the request stays
    const { snapshot } = await acts.refreshSku({ sku: 'A' });
    let finished = false;
    const finishing = finishRebuild('A', snapshot).then(() => (finished = true));
    await sleep(1_000);
    expect(finished).toBe(false);
    expect(await reasons()).toEqual(['unknown', 'eligible']);
    for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') break;
    await finishing; // applied: the request is done
    expect(await c.redis.sismember(c.keys.ofSku('A').rebuilds, 'A')).toBe(0);
    expect(await reasons()).toEqual(['eligible', 'eligible']);
  });

  it("a rebuild's retry checks once and fails at once, holding no worker slot while the drain has not applied its rows", async () => {
    await c.pool.query(`insert into shop.skus (sku_id, title, lifecycle) values ('W1', 't', 'active')`);
    await captured();
    for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') break;
    await c.redis.sadd(c.keys.ofSku('W1').rebuilds, 'W1');
    const { snapshot } = await acts.refreshSku({ sku: 'W1' });
    // a retry of the activity while the drain has not applied the rows: it does not wait for it
    // (the drain applies them half a second later: a waiting attempt would see that and succeed)
    const retry = new MockActivityEnvironment({ attempt: 2 });
    const { finishSkuRebuild } = createActivities(pipelineClients(c));
    const checking = retry.run(finishSkuRebuild, { sku: 'W1', snapshot });
    const draining = (async () => {
      await sleep(500);
      for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') break;
    })();
    await expect(checking).rejects.toThrow(/has not yet applied SKU W1/);
    await draining;
    expect(await c.redis.sismember(c.keys.ofSku('W1').rebuilds, 'W1')).toBe(1); // still pending: reads say unknown
    await retry.run(finishSkuRebuild, { sku: 'W1', snapshot }); // the next retry finds it applied
    expect(await c.redis.sismember(c.keys.ofSku('W1').rebuilds, 'W1')).toBe(0);
  });

  // trigger capture: pipeline.refresh_sku reads the rows FOR SHARE in the source
  it.skipIf(c.config.CAPTURE_MODE === 'logical')(
    'a rebuild behind a source transaction that holds one of its rows gives up within seconds, holding no connection',
    async () => {
      await c.pool.query(`insert into shop.skus (sku_id, title, lifecycle) values ('L1', 't', 'active')`);
      await c.pool.query(`insert into shop.inventory values ('L1', 'F1', 5, 0, now())`);
      const open = await c.pool.connect();
      try {
        await open.query('begin');
        await open.query(`update shop.inventory set reserved = 1 where sku_id = 'L1'`);
        const started = Date.now();
        await expect(acts.refreshSku({ sku: 'L1' })).rejects.toThrow(/lock timeout/);
        expect(Date.now() - started).toBeLessThan(20_000);
        // the failed statement's connection is back in the pool, not waiting on the lock
        expect(c.pool.totalCount - c.pool.idleCount).toBe(1); // only the open transaction's
      } finally {
        await open.query('rollback');
        open.release();
      }
      expect((await acts.refreshSku({ sku: 'L1' })).rows).toBe(2);
    },
  );
});
