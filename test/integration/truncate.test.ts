/**
 * A captured TRUNCATE is applied (issue 11, point 4): the drain empties the store before the chunk
 * that holds it, reads say stale, and the refill (what backfill-auto runs) leaves the store equal
 * to the source, under traffic, with rows written back after the TRUNCATE included.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Activities } from '../../activities';
import { afterAll, describe, expect, it } from 'vitest';
import { activitiesFor } from '../support/activities';
import { compareSnapshots } from '../../reconcile/compare';
import { sourceFeatures } from '../../reconcile/source-features';
import { storeFeatures } from '../../reconcile/store-features';
import { createBadgeReader } from '../../serving/badge-reader';
import { CatalogueSize, seedCatalogue, skuId } from '../../simulator/catalogue';
import { runTraffic } from '../../simulator/traffic';
import { backfillEverything } from '../support/backfill';
import { recordingDivergences } from '../support/metrics';
import { leaveTruncateDeadLetter } from '../support/source';
import { pipelineClients, resetState, testClients } from '../support/env';
import { trafficTarget } from '../support/logical-run';

const size: CatalogueSize = { skus: 200, fcs: 4, regions: 2, fcsPerRegion: 2, fcsPerSku: 2 };
const c = testClients({ STALE_AFTER_MS: '60000' });
afterAll(() => c.close());
const owner = 'truncate-test';
const mismatches = async () => compareSnapshots(await sourceFeatures(c.pool), await storeFeatures(c.redis, c.keys));

/** Activities that record every divergence they report, on a seeded and drained catalogue. */
async function seededAndDrained(): Promise<{ acts: Activities; divergences: string[] }> {
  const { metrics, divergences } = recordingDivergences();
  const acts = activitiesFor({ ...pipelineClients(c), metrics });
  await resetState(c);
  await acts.acquireDrainLease({ owner });
  await seedCatalogue(c.pool, size);
  return { acts, divergences };
}
const refill = (acts: Activities) => backfillEverything(acts, 'test-truncate', { drainOwner: owner });
/** How many partitions still have their epoch (are complete). */
const epochs = async () => {
  let n = 0;
  for (const p of c.keys.partitions) n += await c.redis.exists(p.epoch);
  return n;
};

describe('TRUNCATE', () => {
  it.each([['inventory'], ['orders']])(
    'of shop.%s under traffic: the store is emptied, stale, then refilled equal to the source',
    async (table) => {
      const { acts, divergences } = await seededAndDrained();
      await runTraffic(trafficTarget(c.pool), { rate: 0, changes: 400, connections: 4, seed: 7, size });
      for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') break;
      expect(await mismatches()).toEqual([]);
      const reader = createBadgeReader({
        redis: c.redis,
        prefix: c.keys.prefix,
        partitions: c.keys.partitions.length,
        staleAfterMs: 60_000,
      });
      expect((await reader.freshness()).stale).toBe(false);

      // Traffic on four connections; a TRUNCATE in the middle, and rows written back after it.
      let trafficDone = false;
      const traffic = runTraffic(trafficTarget(c.pool), {
        rate: 600,
        durationMs: 2000,
        connections: 4,
        seed: 8,
        size,
      }).then(() => (trafficDone = true));
      await sleep(600);
      await c.pool.query(`truncate shop.${table}`);
      if (table === 'inventory')
        await c.pool.query(`insert into shop.inventory values ($1, 'FC-000', 3, 0, now())`, [skuId(0)]);
      let sawTruncate = false;
      while (!trafficDone) {
        // Small chunks: the batch that holds the TRUNCATE is delivered in several, and a transaction
        // that wrote the table before the TRUNCATE can come after it in the batch.
        await acts.drainBatch({ owner, maxRows: 7 });
        if (divergences.includes('truncate') && !sawTruncate) {
          sawTruncate = true;
          // emptied (with several drain shards: the partitions of the shard that met it first): reads are stale
          expect(await epochs()).toBeLessThan(c.keys.partitions.length);
          expect((await reader.freshness()).stale).toBe(true);
        }
      }
      await traffic;
      for (;;) if ((await acts.drainBatch({ owner, maxRows: 7 })).outcome === 'idle') break;
      expect(new Set(divergences)).toEqual(new Set(['truncate'])); // (once per drain shard)
      expect((await reader.freshness()).stale).toBe(true); // until the refill is done
      expect((await c.pool.query(`select count(*)::int as n from pipeline.dead_letters`)).rows[0].n).toBe(0);

      await refill(acts);
      for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') break;
      expect(await mismatches()).toEqual([]);
      expect((await reader.freshness()).stale).toBe(false);
      if (table === 'inventory') {
        const badge = (await reader.getBadges('R-00', [skuId(1)])).badges[0];
        expect(badge.eligible).toBe(false); // its stock was truncated: no promise
      }
    },
  );

  it('a TRUNCATE dead-lettered by an older version is applied by dead-letters retry', async () => {
    const { acts } = await seededAndDrained();
    for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') break;
    await leaveTruncateDeadLetter(c.pool);
    expect((await mismatches()).length).toBeGreaterThan(0);
    expect(await acts.retryDeadLetters({})).toMatchObject({ retried: 1, failed: 0 });
    expect(await epochs()).toBe(0); // emptied: stale until refilled
    await refill(acts);
    for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') break;
    expect(await mismatches()).toEqual([]);
  });

  it('a TRUNCATE in the first chunk of a batch is applied when a later chunk completes it', async () => {
    const { acts, divergences } = await seededAndDrained();
    for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') break;
    await c.pool.query(`truncate shop.inventory`);
    for (let i = 0; i < 5; i++)
      await c.pool.query(`insert into shop.inventory values ($1, 'FC-000', 3, 0, now())`, [skuId(i)]);
    // One row per chunk: the TRUNCATE (lowest txid) is the first chunk, the batch ends five later.
    const first = await acts.drainBatch({ owner, maxRows: 1 });
    expect(first.caughtUp).toBe(false);
    expect(divergences).toEqual([]);
    for (;;) if ((await acts.drainBatch({ owner, maxRows: 1 })).outcome === 'idle') break;
    expect(new Set(divergences)).toEqual(new Set(['truncate'])); // (once per drain shard)
    await refill(acts);
    for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') break;
    expect(await mismatches()).toEqual([]);
  });
});
