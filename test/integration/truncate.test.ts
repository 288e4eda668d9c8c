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
import { monitorStore } from '../support/store-monitor';
import { drainShard, shardOfPartition } from '../../outbox/shards';
import { trafficTarget } from '../support/logical-run';
import { dumpStore, restoreStore, type StoreFile } from '../support/redis-file';

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

/**
 * The delivery positions the drain's apply calls record (store/lua/apply.lua, ARGV[5..7]), seen by
 * MONITOR on every Redis master while it runs, each as "consumer=batch:txid:id": the cursor row of
 * the drain shard that owns the call's partition (KEYS[1], its pos key), so that with several
 * shards each apply is compared with its own shard's cursor.
 */
async function watchApplyPositions(): Promise<{ stop: () => Promise<string[]> }> {
  const seen: string[] = [];
  const shards = c.config.DRAIN_SHARDS;
  const consumerOfPos = new Map(
    c.keys.partitions.map((p, k) => [p.pos, drainShard(shardOfPartition(k, shards), shards).consumer]),
  );
  const monitor = await monitorStore(c.redis, (args) => {
    // EVAL too: a node that lacks the script (a script changed since the cluster started) gets it
    // by EVAL the first time
    if (!['evalsha', 'eval'].includes(String(args[0]).toLowerCase())) return;
    const argv = args.slice(3 + Number(args[2]));
    if (argv[2] === 'drain' && argv[4] !== '')
      seen.push(`${consumerOfPos.get(args[3]) ?? `unknown partition ${args[3]}`}=${argv[4]}:${argv[5]}:${argv[6]}`);
  });
  return {
    stop: async () => {
      await monitor.stop();
      return seen;
    },
  };
}

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

  // A 'T' row of a table outside the contract, written by hand or by a buggy writer, is malformed
  // like any other row: the store holds nothing of that table, so nothing is emptied or marked.
  // Delivered in one chunk (the batch's rows tell its TRUNCATEs) and in chunks of one row (asked of
  // PostgreSQL, before every chunk and as the last one is applied).
  it.each([
    ['in one chunk', 1000],
    ['in a batch delivered in chunks', 1],
  ])(
    'a TRUNCATE row of a table outside the contract, %s, is a dead letter: nothing emptied, reads fresh',
    async (_, maxRows) => {
      const { acts, divergences } = await seededAndDrained();
      const drainAll = async () => {
        for (;;) if ((await acts.drainBatch({ owner, maxRows })).outcome === 'idle') return;
      };
      await drainAll();
      const reader = createBadgeReader({
        redis: c.redis,
        prefix: c.keys.prefix,
        partitions: c.keys.partitions.length,
        staleAfterMs: 60_000,
      });
      const badge = async () => (await reader.getBadges('R-00', [skuId(0)])).badges[0];
      const before = await badge();

      // the TRUNCATE row first (lowest txid), then changes of the contract's tables after it
      await c.pool.query(`insert into pipeline.outbox (tbl, op, key) values ('warehouses', 'T', '')`);
      for (let i = 1; i <= 3; i++)
        await c.pool.query(`update shop.inventory set on_hand = on_hand + 1 where sku_id = $1`, [skuId(i)]);
      await drainAll();

      expect(divergences).toEqual([]); // not emptied
      expect(await epochs()).toBe(c.keys.partitions.length);
      expect(await mismatches()).toEqual([]); // the store kept everything, the changes after it applied
      const letters = (await c.pool.query(`select tbl, op, error from pipeline.dead_letters`)).rows;
      expect(letters.length).toBe(c.config.DRAIN_SHARDS); // (a row every drain shard reads: one each)
      for (const letter of letters)
        expect(letter).toEqual({
          tbl: 'warehouses',
          op: 'T',
          error: expect.stringMatching(/TRUNCATE of unknown source table 'warehouses'/),
        });
      // it holds nothing back: the badge does not read that table
      expect((await reader.freshness()).stale).toBe(false);
      expect(await badge()).toEqual(before);

      // no mark of a TRUNCATE left behind either: the next batches apply in step, nothing rebuilt
      await c.pool.query(`update shop.inventory set on_hand = on_hand + 1 where sku_id = $1`, [skuId(0)]);
      await drainAll();
      expect(divergences).toEqual([]);
      expect(await mismatches()).toEqual([]);

      // and a retry does not apply it as a TRUNCATE: it fails again with its reason, the store whole
      expect(await acts.retryDeadLetters({})).toMatchObject({ retried: 0, failed: letters.length });
      expect(await epochs()).toBe(c.keys.partitions.length);
      expect((await reader.freshness()).stale).toBe(false);
      expect(await mismatches()).toEqual([]);
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

  // The batch's last chunk holds a transaction that wrote inventory before the TRUNCATE took its
  // lock (a higher txid, committed first: under the trigger capture it comes after the TRUNCATE
  // row). The worker dies after the store was emptied, before the cursor commit: the retry applies
  // that chunk again into the empty store, and must empty it again, though the TRUNCATE is in an
  // earlier chunk and the store, emptied, remembers nothing of it.
  it('a crash between the emptying and the cursor commit of a batch whose TRUNCATE is in an earlier chunk', async () => {
    const { acts, divergences } = await seededAndDrained();
    for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') break;
    const truncating = await c.pool.connect();
    try {
      await truncating.query('begin');
      await truncating.query('select pg_current_xact_id()'); // the lower txid
      await c.pool.query(`update shop.inventory set on_hand = on_hand + 500 where sku_id = $1`, [skuId(0)]);
      await truncating.query('truncate shop.inventory');
      await truncating.query('commit');
    } finally {
      truncating.release();
    }
    const offsets = async () =>
      (await c.pool.query(`select coalesce(jsonb_agg(o), '[]') as o from pipeline.consumer_offsets o`)).rows[0].o;
    // Two rows per chunk: the TRUNCATE and the SKU's first stock row, then its second, which
    // completes the batch (under capture from the WAL: the stock rows, then the TRUNCATE). That
    // pass empties the store, and is then undone in PostgreSQL as a crash before its commit would
    // leave it (its Redis writes stay).
    for (;;) {
      const before = await offsets();
      const applies = await watchApplyPositions();
      const r = await acts.drainBatch({ owner, maxRows: 2 });
      const positions = await applies.stop();
      if (!r.caughtUp) continue;
      expect(divergences).toContain('truncate');
      // Its apply left the store's position where the check found it; the emptying then set the
      // batch's end. A Redis back from a file written between the two is found behind, not in step.
      // (with drain shards, each shard's applies against its own cursor)
      const cursors = new Map(
        (before as { consumer: string; last_batch: number; last_txid: string; last_id: number }[]).map((at) => [
          at.consumer,
          `${at.consumer}=${at.last_batch}:${at.last_txid}:${at.last_id}`,
        ]),
      );
      expect(positions.length).toBeGreaterThan(0);
      for (const seen of positions) expect(seen).toBe(cursors.get(seen.split('=')[0]));
      await c.pool.query(
        `update pipeline.consumer_offsets o
            set batch = s.batch, snap_from = s.snap_from, snap_from_at = s.snap_from_at, snap_to = s.snap_to,
                snap_to_at = s.snap_to_at, txid = s.txid, id = s.id, last_batch = s.last_batch,
                last_txid = s.last_txid, last_id = s.last_id
           from jsonb_populate_recordset(null::pipeline.consumer_offsets, $1::jsonb) s
          where o.consumer = s.consumer`,
        [JSON.stringify(before)],
      );
      break;
    }
    divergences.length = 0;
    for (;;) if ((await acts.drainBatch({ owner, maxRows: 2 })).outcome === 'idle') break;
    expect(new Set(divergences)).toEqual(new Set(['truncate'])); // emptied again
    await refill(acts);
    for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') break;
    expect(await mismatches()).toEqual([]);
  });

  // The stock row after the TRUNCATE fills its chunk, so the pass that completes the batch reads
  // nothing and only empties the store: the chunk before it had already moved the store's position
  // to the batch's end. A Redis back from a file written between the two would be in step with the
  // cursor, and serve the truncated rows as fresh.
  it('a Redis back from a file written just before an emptying whose pass read no rows is rebuilt', async () => {
    const { acts, divergences } = await seededAndDrained();
    for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') break;
    await c.pool.query(`truncate shop.inventory`);
    await c.pool.query(`insert into shop.inventory values ($1, 'FC-000', 3, 0, now())`, [skuId(0)]);
    let file: StoreFile | null = null;
    for (let pass = 0; !divergences.includes('truncate'); pass++) {
      expect(pass).toBeLessThan(10);
      file = await dumpStore(c.redis, c.keys); // the file of the moment before this pass
      await acts.drainBatch({ owner, maxRows: 1 });
    }
    for (;;) if ((await acts.drainBatch({ owner, maxRows: 1 })).outcome === 'idle') break; // committed
    await restoreStore(c.redis, c.keys, file!);
    expect(await epochs()).toBe(c.keys.partitions.length); // the file's store says complete
    divergences.length = 0;
    await acts.drainBatch({ owner });
    expect(divergences).toContain('behind-rebuild');
    expect(await epochs()).toBe(0); // rebuilt: reads stale until the refill
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
