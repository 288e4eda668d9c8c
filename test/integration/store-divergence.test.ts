/**
 * The store proves what it holds (issue 11): a Redis restarted from a real RDB dump older than
 * the drain cursor is noticed, reads say stale, and the drain re-delivers from the store's own
 * position; a store ahead of the source (PostgreSQL restored from a backup) is rebuilt loudly.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Activities } from '../../activities';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ChildProcess, spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activitiesFor } from '../support/activities';
import { compareSnapshots } from '../../reconcile/compare';
import { sourceFeatures } from '../../reconcile/source-features';
import { storeFeatures } from '../../reconcile/store-features';
import { createBadgeReader } from '../../serving/badge-reader';
import { CatalogueSize, seedCatalogue } from '../../simulator/catalogue';
import { runTraffic } from '../../simulator/traffic';
import { backfillEverything } from '../support/backfill';
import { recordingDivergences } from '../support/metrics';
import { restoreCursorRow, saveCursorRow, type SavedCursor } from '../support/cursor';
import { pipelineClients, resetState, storeReader, testClients } from '../support/env';
import { freePort, stopProcess } from '../support/redis-process';
import { exited } from '../support/worker-process';
import { FIELD } from '../../store/names';
import { chunkPrint } from '../../store/chunk-print';
import { rebuildStore } from '../../store/rebuild';
import {
  BackfillWritesLost,
  finishBackfill,
  markBackfillStart,
  recordBackfillStep,
  type BackfillTable,
} from '../../activities/backfill/backfill';

const size: CatalogueSize = { skus: 200, fcs: 4, regions: 2, fcsPerRegion: 2, fcsPerSku: 2 };
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fb-redis-'));
let port: number;
let server: ChildProcess;

/** A redis-server that keeps an RDB file in `dir`, like a production one with persistence. */
async function startPersistentRedis(): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--dbfilename',
      'dump.rdb',
      '--save',
      '',
      '--appendonly',
      'no',
    ],
    { stdio: 'ignore' },
  );
  const probe = new Redis({ port, lazyConnect: true, retryStrategy: () => 50, maxRetriesPerRequest: null });
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await probe.connect().catch(() => undefined);
      if ((await probe.ping()) === 'PONG') break;
    } catch {
      // loading
    }
    if (Date.now() > deadline) throw new Error('redis-server did not come up');
    await sleep(50);
  }
  probe.disconnect();
  return child;
}

/**
 * Redis dies without saving and comes back from its older file. (A client of its own that never
 * reconnects: ioredis would resend SHUTDOWN to the new server.)
 */
async function restartFromFile(): Promise<void> {
  const gone = exited(server);
  const killer = new Redis({ port, retryStrategy: () => null, autoResendUnfulfilledCommands: false });
  await killer.call('SHUTDOWN', 'NOSAVE').catch(() => undefined);
  killer.disconnect();
  await gone;
  server = await startPersistentRedis();
  await c.redis.ping();
}

let c: ReturnType<typeof testClients>;
beforeAll(async () => {
  port = await freePort();
  server = await startPersistentRedis();
  c = testClients({ REDIS_URL: `redis://127.0.0.1:${port}/0`, STALE_AFTER_MS: '500' });
  c.redis.on('error', () => undefined); // refused while the test restarts it: ioredis reconnects
});
afterAll(async () => {
  await c.close();
  await stopProcess(server);
  fs.rmSync(dir, { recursive: true, force: true });
});

const owner = 'divergence-test';
const mismatches = async () => compareSnapshots(await sourceFeatures(c.pool), await storeFeatures(c.redis, c.keys));

async function drainAll(acts: Activities): Promise<string[]> {
  const outcomes: string[] = [];
  for (;;) {
    const r = await acts.drainBatch({ owner });
    outcomes.push(r.outcome);
    if (r.outcome === 'idle') return outcomes;
  }
}

/** A seeded, drained store (this file's, or `on`), with activities whose metrics record every divergence found. */
/** The store claims the cursor's batch at `target`, in every partition (with `more` fields). */
async function claimAt(on: typeof c, cursor: SavedCursor, target: string, ...more: string[]): Promise<void> {
  for (const p of on.keys.partitions)
    await on.redis.hset(
      p.pos,
      FIELD.claimedBatch,
      String(cursor.batch),
      FIELD.claimedFrom,
      String(cursor.snap_from),
      FIELD.claimedTarget,
      target,
      FIELD.claimedAt,
      String(Date.now()),
      ...more,
    );
}

async function seededStoreCountingDivergences(on: ReturnType<typeof testClients> = c) {
  const { metrics, divergences } = recordingDivergences();
  const acts = activitiesFor({ ...pipelineClients(on), metrics });
  await resetState(on);
  await acts.acquireDrainLease({ owner });
  await seedCatalogue(on.pool, size);
  await drainAll(acts);
  return { acts, divergences };
}

/** Enough keys in every partition that a rebuild takes a while to unlink them. */
async function fillSlowToUnlink(): Promise<void> {
  const filler = c.redis.pipeline();
  for (let n = 0; n < 60_000; n++) filler.set(`${c.keys.partitions[n % c.keys.partitions.length]!.prefix}zz:${n}`, '1');
  await filler.exec();
}

describe('store position', () => {
  it('Redis restarted from an RDB dump older than the cursor, under traffic: stale until whole, then equal to the source', async () => {
    const acts = activitiesFor(pipelineClients(c));
    await resetState(c);
    await acts.acquireDrainLease({ owner });
    await seedCatalogue(c.pool, size);
    await drainAll(acts);
    await runTraffic(c.pool, { rate: 0, changes: 500, connections: 4, seed: 1, size });
    await drainAll(acts);
    await c.redis.save(); // the file Redis will come back from
    await sleep(700); // older than STALE_AFTER_MS by the time it is back
    await runTraffic(c.pool, { rate: 0, changes: 1500, connections: 4, seed: 2, size });
    await drainAll(acts);
    expect(await mismatches()).toEqual([]);

    // Redis dies without saving and comes back from the older file: the epoch and the watermark
    // are there (from the file), the last 1,500 changes are not.
    await restartFromFile();
    expect(await c.redis.exists(c.keys.partitions[0].epoch)).toBe(1);
    expect((await mismatches()).length).toBeGreaterThan(0);
    const reader = createBadgeReader({
      redis: c.redis,
      prefix: c.keys.prefix,
      partitions: c.keys.partitions.length,
      staleAfterMs: 500,
    });
    expect((await reader.freshness()).stale).toBe(true);

    // The drain notices, re-delivers from the store's own position, while traffic goes on.
    let trafficDone = false;
    const traffic = runTraffic(c.pool, { rate: 800, durationMs: 1500, connections: 2, seed: 3, size }).then(
      () => (trafficDone = true),
    );
    const outcomes: string[] = [];
    while (!trafficDone) {
      const r = await acts.drainBatch({ owner });
      outcomes.push(r.outcome);
      // Re-aligned but not yet re-delivered: still stale (the watermark came back old with the data).
      if (r.outcome === 'repaired') expect((await reader.freshness()).stale).toBe(true);
    }
    await traffic;
    outcomes.push(...(await drainAll(acts)));
    expect(outcomes[0]).toBe('repaired');
    expect(outcomes.filter((o) => o === 'repaired')).toHaveLength(1);
    expect(await mismatches()).toEqual([]);
    // fresh after a pass that confirms the watermark (the compare above can take longer than 500 ms)
    await drainAll(acts);
    expect((await reader.freshness()).stale).toBe(false);
  });

  // A backfill refilling the store (no epoch) while Redis dies and comes back from an older file:
  // the writes of its later chunks are gone, and the backfill must not mark the store complete
  // over those holes (the workflow starts it again: test/workflows).
  it('Redis restarted from an older file during a backfill: the next step fails, the finish leaves the store incomplete', async () => {
    const { acts } = await seededStoreCountingDivergences();
    await rebuildStore(c.redis, c.keys, null); // a refill: every partition emptied, no epoch
    await drainAll(acts); // the batch that finds the store emptied sets its fence (and starts the backfill)
    const marker = 'bf-restart-test';
    await acts.backfillPlan({ marker });
    const chunk = (table: BackfillTable, step: number) =>
      acts.backfillChunk({ table, after: null, limit: 100_000, marker, step });
    await chunk('fulfillment_centers', 1);
    await c.redis.save(); // the file Redis will come back from: step 1 done
    await chunk('region_fc', 2);
    await chunk('skus', 3);
    await restartFromFile();
    await expect(chunk('inventory', 4)).rejects.toMatchObject({ type: 'BackfillWritesLost' });
    const finished = await acts.finishBackfill({ epoch: 'bf-restart-epoch', marker, steps: 4 });
    expect(finished.incomplete).toEqual(c.keys.partitions.map((_, i) => i));
    expect(await c.redis.exists(c.keys.partitions[0].epoch)).toBe(0);
    // started again, it completes the store
    await backfillEverything(acts, 'bf-restart-again');
    await drainAll(acts);
    expect(await mismatches()).toEqual([]);
  });

  // A backfill finishing while the store is emptied (a captured TRUNCATE, a lost source, a store
  // found ahead) must not mark the emptied partitions complete. The rebuild removes the backfill's
  // marks before the epochs, and again once the keys are gone (a backfill begun in between).
  it('a backfill finishing while the store is being emptied leaves it incomplete', async () => {
    await seededStoreCountingDivergences();
    await fillSlowToUnlink();
    const marker = 'bf-during-rebuild';
    await markBackfillStart(c.redis, c.keys, marker);
    const rebuilding = rebuildStore(c.redis, c.keys, null);
    const last = c.keys.partitions[c.keys.partitions.length - 1]!;
    while (await c.redis.exists(last.epoch)) await sleep(1); // the keys are being unlinked now
    const finished = await finishBackfill(c.redis, c.keys, 'epoch-during-rebuild', marker);
    await markBackfillStart(c.redis, c.keys, 'bf-begun-during-rebuild');
    await rebuilding;
    expect(finished.incomplete).toEqual(c.keys.partitions.map((_, i) => i));
    for (const p of c.keys.partitions) {
      expect(await c.redis.exists(p.epoch)).toBe(0);
      expect(await c.redis.exists(p.backfill)).toBe(0); // the one begun meanwhile cannot finish either
    }
  });

  // A Redis back from a file written while a rebuild ran holds part of the old data, no epoch, and
  // a position that may look in step (one reset before, or one no check ever moved). The rebuild's
  // first write marks every position it empties, and its last removes the mark.
  it('a rebuild marks each position first and keeps it until its end', async () => {
    await seededStoreCountingDivergences();
    await fillSlowToUnlink();
    const rebuilding = rebuildStore(c.redis, c.keys, null);
    const last = c.keys.partitions[c.keys.partitions.length - 1]!;
    while (await c.redis.exists(last.epoch)) await sleep(1); // the keys are being unlinked now
    for (const p of c.keys.partitions) expect(await c.redis.hget(p.pos, FIELD.rebuilding)).toBe('1');
    await rebuilding;
    for (const p of c.keys.partitions) expect(await c.redis.exists(p.pos)).toBe(0); // no cursor: none
    const position = { batch: '7', txid: '100', id: '5' };
    await rebuildStore(c.redis, c.keys, { last: position, from: '100:100:' });
    for (const p of c.keys.partitions)
      expect(await c.redis.hgetall(p.pos)).toEqual({
        [FIELD.appliedBatch]: '7',
        [FIELD.appliedTxid]: '100',
        [FIELD.appliedId]: '5',
      });
  });

  it('a store left by a rebuild that never ended is rebuilt again, though its position is in step', async () => {
    const { acts, divergences } = await seededStoreCountingDivergences();
    // as a file written half way through a rebuild: marked, no epoch, old data left in it
    const sku = 'SKU-0000001';
    const key = c.keys.sku(sku);
    const [fc, held] = Object.entries(await c.redis.hgetall(key)).find(([f]) => f.startsWith('FC-'))!;
    for (const p of c.keys.partitions) {
      await c.redis.hset(p.pos, FIELD.rebuilding, '1');
      await c.redis.del(p.epoch);
    }
    await c.redis.hset(key, fc, `999${held.slice(held.indexOf('|'))}`);
    expect(await mismatches()).not.toEqual([]);
    await drainAll(acts);
    expect(divergences).toContain('behind-rebuild');
    await backfillEverything(acts, 'test-unfinished-rebuild', { drainOwner: owner });
    await drainAll(acts);
    expect(await mismatches()).toEqual([]);
    for (const p of c.keys.partitions) expect(await c.redis.hexists(p.pos, FIELD.rebuilding)).toBe(0);
  });

  // A backfill started by an older worker marked the start without a step: counting starts at the
  // first step recorded, and a step far behind is still told.
  it('backfill steps: counting starts where an older worker left no step; a gap is lost writes', async () => {
    await seededStoreCountingDivergences();
    const p = c.keys.partitions[0]!;
    await c.redis.set(p.backfill, 'older-worker');
    await c.redis.del(p.backfillStep);
    await recordBackfillStep(c.redis, { ...c.keys, partitions: [p] }, 'older-worker', 7);
    expect(await c.redis.get(p.backfillStep)).toBe('7');
    await recordBackfillStep(c.redis, { ...c.keys, partitions: [p] }, 'older-worker', 7); // a retried step
    await expect(recordBackfillStep(c.redis, { ...c.keys, partitions: [p] }, 'older-worker', 9)).rejects.toBeInstanceOf(
      BackfillWritesLost,
    );
  });

  it('a store ahead of the source (PostgreSQL restored from a backup) is rebuilt, loudly, and reads are stale until it is whole', async () => {
    const { acts, divergences } = await seededStoreCountingDivergences();
    const backup = await saveCursorRow(c.pool);
    // Two batches the store sees and the restored database will not know about.
    await runTraffic(c.pool, { rate: 0, changes: 300, connections: 4, seed: 4, size });
    await drainAll(acts);
    await runTraffic(c.pool, { rate: 0, changes: 300, connections: 4, seed: 5, size });
    await drainAll(acts);
    // The restore: the cursor goes back, the store keeps what it had seen.
    await restoreCursorRow(c.pool, backup);
    const r = await acts.drainBatch({ owner });
    expect(r).toMatchObject({ outcome: 'repaired', storeIncomplete: true });
    expect(divergences).toEqual(['ahead']);
    expect(await c.redis.exists(c.keys.partitions[0].epoch)).toBe(0);
    const reader = createBadgeReader({
      redis: c.redis,
      prefix: c.keys.prefix,
      partitions: c.keys.partitions.length,
      staleAfterMs: 500,
    });
    expect((await reader.freshness()).stale).toBe(true);

    // What backfill-auto does: fill every table from a snapshot, recompute loads, set the epoch.
    await drainAll(acts);
    await backfillEverything(acts, 'test-rebuild');
    await drainAll(acts);
    expect(await mismatches()).toEqual([]);
    await drainAll(acts); // a pass that confirms the watermark after the compare
    expect((await reader.freshness()).stale).toBe(false);
    expect(divergences).toEqual(['ahead']); // once
  });

  it('a claimed target newer than any snapshot PostgreSQL hands out (transaction ids went back) means ahead', async () => {
    const { acts, divergences } = await seededStoreCountingDivergences();
    const cursor = await saveCursorRow(c.pool);
    // The store claimed the cursor's next batch at a snapshot from "the future" of this database:
    // what it looks like after PostgreSQL is restored to a point before that claim.
    await c.redis.hset(
      c.keys.partitions[0].pos,
      FIELD.claimedBatch,
      String(cursor.batch),
      FIELD.claimedFrom,
      String(cursor.snap_from),
      FIELD.claimedTarget,
      '4000000000:4000000000:',
      FIELD.claimedAt,
      String(Date.now()),
    );
    // and the deletion fence moved there by a sweep before the restore
    for (const p of c.keys.partitions) await c.redis.set(p.fence, '4000000000:4000000000:');
    const r = await acts.drainBatch({ owner });
    expect(r).toMatchObject({ outcome: 'repaired', storeIncomplete: true });
    expect(divergences).toEqual(['ahead']);
    // The lost history's fence would refuse every chunk until the xids caught up with it: the
    // rebuild starts the fence again from the restored cursor, and the refill completes.
    for (const p of c.keys.partitions) expect(await c.redis.get(p.fence)).not.toBe('4000000000:4000000000:');
    await drainAll(acts);
    await backfillEverything(acts, 'test-rebuild-restored');
    await drainAll(acts);
    expect(await mismatches()).toEqual([]);
  });

  // After a failover that lost the claiming pass's commit, the new primary hands the same
  // transaction ids out again: once they pass the claim's xmax the claim looks current, but a
  // transaction running now under an id the claim took for ended would be read as invisible, and
  // the next batch, starting from the claim, would take its rows for delivered: lost for good.
  it('a claimed target that takes a transaction running now for ended (ids handed out again) means ahead', async () => {
    const { acts, divergences } = await seededStoreCountingDivergences();
    const running = await c.pool.connect();
    try {
      await running.query('begin');
      const x = BigInt((await running.query(`select pg_current_xact_id()::text as x`)).rows[0].x);
      // an idle pass: the next one's snapshot (begun with this one's commit) sees x running
      expect((await acts.drainBatch({ owner })).outcome).toBe('idle');
      const cursor = await saveCursorRow(c.pool);
      // every id below x + 1 ended, x among them; its xmax no later than any snapshot now
      await claimAt(c, cursor, `${x + 1n}:${x + 1n}:`);
      const r = await acts.drainBatch({ owner });
      expect(r).toMatchObject({ outcome: 'repaired', storeIncomplete: true });
      expect(divergences).toEqual(['ahead']);
    } finally {
      await running.query('rollback');
      running.release();
    }
    await drainAll(acts);
    await backfillEverything(acts, 'test-rebuild-reused-ids');
    await drainAll(acts);
    expect(await mismatches()).toEqual([]);
  });
});

// The pipeline database failed over to an asynchronous standby (or was restored) that lacks the
// drain's last cursor commit, and with it outbox rows that chunk applied, after the new primary's
// transaction ids passed the claimed target: it looks like a crash between the chunk's apply and
// its commit. The chunk's record (activities/drain/adopted-chunk.ts) tells the two apart.
describe('a store one chunk ahead of the cursor', () => {
  /** An inventory row at 0 on hand, drained; the cursor row as it is then; the outbox's last id. */
  async function soldOutRow(acts: Activities) {
    const { rows } = await c.pool.query<{ sku_id: string; fc_id: string }>(
      `select sku_id, fc_id from shop.inventory order by sku_id, fc_id limit 1`,
    );
    const row = rows[0]!;
    await c.pool.query(`update shop.inventory set on_hand = 0 where sku_id = $1 and fc_id = $2`, [
      row.sku_id,
      row.fc_id,
    ]);
    await drainAll(acts);
    const cursor = await saveCursorRow(c.pool);
    const { rows: ids } = await c.pool.query<{ id: string }>(
      `select coalesce(max(id), 0)::text as id from pipeline.outbox`,
    );
    return { row, cursor, lastId: ids[0]!.id };
  }
  const restock = (row: { sku_id: string; fc_id: string }, onHand: number) =>
    c.pool.query(`update shop.inventory set on_hand = $3 where sku_id = $1 and fc_id = $2`, [
      row.sku_id,
      row.fc_id,
      onHand,
    ]);
  const reader = () => storeReader(c, 60_000);
  /** The outbox rows after `id`, in delivery order, with what a chunk's record sums. */
  const rowsAfter = async (pool: typeof c.pool, id: string) =>
    (
      await pool.query<{ id: string; txid: string; created_ms: number }>(
        `select id::text, txid::text, (extract(epoch from created_at) * 1000)::float8 as created_ms
           from pipeline.outbox where id > $1 order by txid, id`,
        [id],
      )
    ).rows;
  const lastOf = (cursor: SavedCursor) => ({
    batch: String(cursor.last_batch),
    txid: String(cursor.last_txid),
    id: String(cursor.last_id),
  });
  /** The store claims the cursor's batch at a snapshot taken now, in every partition (with `more` fields). */
  async function claimNow(on: typeof c, cursor: SavedCursor, ...more: string[]): Promise<void> {
    const { rows: snap } = await on.pool.query<{ s: string }>(`select pg_current_snapshot()::text as s`);
    await claimAt(on, cursor, snap[0]!.s, ...more);
  }
  /** A store of 4 partitions on this file's Redis, seeded and drained, counting divergences. */
  async function fourPartitions() {
    const c4 = testClients({ REDIS_URL: `redis://127.0.0.1:${port}/0`, STORE_PARTITIONS: '4' });
    const { acts, divergences } = await seededStoreCountingDivergences(c4);
    return { c4, acts4: acts, divergences };
  }

  it('a crash between its apply and its commit: the outbox holds its rows, and it is adopted', async () => {
    const { acts, divergences } = await seededStoreCountingDivergences();
    const { row, cursor } = await soldOutRow(acts);
    await restock(row, 50);
    expect(await acts.drainBatch({ owner })).toMatchObject({ outcome: 'applied', rows: 1 });
    await restoreCursorRow(c.pool, cursor); // the commit never happened; the rows are there
    expect(await acts.drainBatch({ owner })).toMatchObject({ outcome: 'applied', rows: 1 });
    expect(divergences).toEqual([]);
    expect(await mismatches()).toEqual([]);
    expect((await reader().freshness()).stale).toBe(false);
  });

  it('a commit the pipeline database lost with the rows it applied: rebuilt, never read as fresh', async () => {
    const { acts, divergences } = await seededStoreCountingDivergences();
    const { row, cursor, lastId } = await soldOutRow(acts);
    // The restock the standby will not have, applied by a chunk whose commit it will not have either.
    await restock(row, 50);
    expect(await acts.drainBatch({ owner })).toMatchObject({ outcome: 'applied', rows: 1 });
    // The failover: the source row as the standby has it (no change event: the capture trigger is
    // skipped), the outbox without the restock's rows, the cursor before the chunk. Transaction
    // ids went on past the claimed target (these statements took some): the claim looks current.
    const standby = await c.pool.connect();
    try {
      await standby.query('begin');
      await standby.query('set local session_replication_role = replica');
      await standby.query(`update shop.inventory set on_hand = 0 where sku_id = $1 and fc_id = $2`, [
        row.sku_id,
        row.fc_id,
      ]);
      await standby.query(`delete from pipeline.outbox where id > $1`, [lastId]);
      await standby.query('commit');
    } finally {
      standby.release();
    }
    await restoreCursorRow(c.pool, cursor);
    expect((await mismatches()).length).toBeGreaterThan(0); // the store promises stock the source lacks

    const r = await acts.drainBatch({ owner });
    expect(r).toMatchObject({ outcome: 'repaired', storeIncomplete: true });
    expect(divergences).toEqual(['ahead']);
    expect((await reader().freshness()).stale).toBe(true);
    await drainAll(acts);
    await backfillEverything(acts, 'test-rebuild-lost-commit');
    await drainAll(acts);
    expect(await mismatches()).toEqual([]);
    expect((await reader().freshness()).stale).toBe(false);
  });

  // A TRUNCATE batch's last chunk is applied without moving the position (its emptying sets it):
  // the worker died before the emptying, and the failover lost the chunk's rows.
  it("a chunk applied in place (a TRUNCATE batch's last, not yet emptied) is checked too", async () => {
    for (const lost of [false, true]) {
      const { acts, divergences } = await seededStoreCountingDivergences();
      const { row, cursor, lastId } = await soldOutRow(acts);
      await restock(row, 50);
      const rows = await rowsAfter(c.pool, lastId);
      // what that apply left: the claim, the position where it was, the chunk's record
      const record = chunkPrint(lastOf(cursor), lost ? [{ ...rows[0]!, created_ms: rows[0]!.created_ms - 1 }] : rows);
      await claimNow(c, cursor, FIELD.appliedChunk, record);
      const r = await acts.drainBatch({ owner });
      if (lost) {
        // (a row of another history under the same id: its write time differs)
        expect(r).toMatchObject({ outcome: 'repaired', storeIncomplete: true });
        expect(divergences).toEqual(['ahead']);
      } else {
        expect(r).toMatchObject({ outcome: 'applied', rows: 1 });
        expect(divergences).toEqual([]);
      }
    }
  });

  // A cluster node failed over to a replica two chunks behind: the rewind goes to that partition's
  // position, and the partitions that kept their writes take it too (store/lua/lower-position.lua),
  // rather than being found more than a chunk ahead and the store rebuilt.
  /** Partition `p`'s position set back to `at` (a position read before), as a node that lost writes has it. */
  const positionBack = (on: typeof c, p: number, at: Record<string, string>) =>
    on.redis.hset(
      on.keys.partitions[p]!.pos,
      FIELD.appliedBatch,
      at[FIELD.appliedBatch]!,
      FIELD.appliedTxid,
      at[FIELD.appliedTxid]!,
      FIELD.appliedId,
      at[FIELD.appliedId]!,
      FIELD.appliedChunk,
      at[FIELD.appliedChunk]!,
    );

  it('a rewind lowers the partitions that kept writes: re-delivered, not rebuilt', async () => {
    const { c4, acts4, divergences } = await fourPartitions();
    try {
      const { rows: skus } = await c4.pool.query<{ sku_id: string }>(
        `select distinct sku_id from shop.inventory order by sku_id limit 6`,
      );
      for (const [i, s] of skus.entries())
        await c4.pool.query(`update shop.inventory set on_hand = on_hand + $2 where sku_id = $1`, [s.sku_id, i + 1]);
      const positions: Record<string, string>[] = [];
      for (let chunk = 0; chunk < 4; chunk++) {
        const r = await acts4.drainBatch({ owner, maxRows: 1 });
        expect(r).toMatchObject({ outcome: 'applied' });
        positions.push(await c4.redis.hgetall(c4.keys.partitions[0]!.pos));
      }
      // partition 0 back at the first chunk's end, partition 1 at the third's (their nodes lost writes)
      await positionBack(c4, 0, positions[0]!);
      await positionBack(c4, 1, positions[2]!);
      expect(await acts4.drainBatch({ owner })).toMatchObject({ outcome: 'repaired' });
      expect(divergences).toEqual(['behind']);
      await drainAll(acts4);
      expect(divergences).toEqual(['behind']); // no rebuild after it
      expect(await c4.redis.exists(c4.keys.partitions[0]!.epoch)).toBe(1);
      expect(compareSnapshots(await sourceFeatures(c4.pool), await storeFeatures(c4.redis, c4.keys))).toEqual([]);
    } finally {
      await c4.close();
    }
  });

  // A cluster node failed over to a replica that lost a chunk (partition 0); the others kept their
  // writes, and their watermarks past a dead-lettered change. The rewind settles that change's
  // letter (it is delivered again): its hold goes where the partition went back (reads there are
  // stale: their watermark is from before the change), and stays where it did not (released there,
  // a read would answer fresh without the change until the re-delivery failed again).
  it('a rewind releases what the re-delivered letters held only in the partitions that went back', async () => {
    const { c4, acts4 } = await fourPartitions();
    try {
      const { rows: skus } = await c4.pool.query<{ sku_id: string }>(
        `select distinct sku_id from shop.inventory order by sku_id limit 3`,
      );
      for (const s of skus)
        await c4.pool.query(`update shop.inventory set on_hand = on_hand + 1 where sku_id = $1`, [s.sku_id]);
      const { rows: fcs } = await c4.pool.query<{ fc_id: string }>(
        `select fc_id from shop.fulfillment_centers limit 1`,
      );
      const fc = fcs[0]!.fc_id;
      // an order the drain cannot apply (qty 0): dead-lettered, its FC held in every partition
      await c4.pool.query(`insert into pipeline.outbox (tbl, op, key, image) values ('orders', 'I', '99', $1)`, [
        JSON.stringify({
          order_id: 99,
          sku_id: skus[0]!.sku_id,
          fc_id: fc,
          qty: 0,
          status: 'placed',
          placed_at: new Date().toISOString(),
        }),
      ]);
      const positions: Record<string, string>[] = [];
      for (;;) {
        const r = await acts4.drainBatch({ owner, maxRows: 1 });
        if (r.outcome === 'idle') break;
        positions.push(await c4.redis.hgetall(c4.keys.partitions[0]!.pos));
      }
      for (const p of c4.keys.partitions) expect(await c4.redis.hexists(p.held, `f:${fc}`)).toBe(1);
      // the letter waited long: its holds are older than the drain's settling of old holds waits for
      const old = String(Date.now() - 11 * 60_000);
      for (const p of c4.keys.partitions) await c4.redis.hset(p.held, `f:${fc}`, old);
      // partition 0 back at the first chunk's end, before the order, without its hold
      await positionBack(c4, 0, positions[0]!);
      await c4.redis.hdel(c4.keys.partitions[0]!.held, `f:${fc}`);
      expect(await acts4.drainBatch({ owner })).toMatchObject({ outcome: 'repaired' });
      expect((await c4.pool.query(`select discarded_by from pipeline.dead_letters where key = '99'`)).rows).toEqual([
        { discarded_by: 'drain' },
      ]);
      // held anew where the writes were kept: the settled letter no longer names it, and an old
      // stamp would let the drain's settling release it before the re-delivery passed the change
      for (const p of c4.keys.partitions.slice(1))
        expect(Number(await c4.redis.hget(p.held, `f:${fc}`))).toBeGreaterThan(Number(old) + 60_000);
      // delivered again, it fails again: held again everywhere, its letter waiting again
      await drainAll(acts4);
      for (const p of c4.keys.partitions) expect(await c4.redis.hexists(p.held, `f:${fc}`)).toBe(1);
    } finally {
      await c4.close();
    }
  });

  // Two attempts at the same chunk both died midway, the second with a smaller chunk (a retry
  // starts again from the base size): partitions hold records of either, each checked on its own.
  it('partitions holding records of two attempts at the chunk: each found in the outbox, adopted', async () => {
    const { c4, acts4, divergences } = await fourPartitions();
    try {
      const cursor = await saveCursorRow(c4.pool);
      const { rows: before } = await c4.pool.query<{ id: string }>(
        `select coalesce(max(id), 0)::text as id from pipeline.outbox`,
      );
      const { rows: skus } = await c4.pool.query<{ sku_id: string }>(
        `select distinct sku_id from shop.inventory order by sku_id limit 2`,
      );
      for (const s of skus)
        await c4.pool.query(`update shop.inventory set on_hand = on_hand + 1 where sku_id = $1`, [s.sku_id]);
      const rows = await rowsAfter(c4.pool, before[0]!.id);
      const attempt = (p: number, upTo: number) =>
        c4.redis.hset(
          c4.keys.partitions[p]!.pos,
          FIELD.appliedBatch,
          String(cursor.batch),
          FIELD.appliedTxid,
          rows[upTo - 1]!.txid,
          FIELD.appliedId,
          rows[upTo - 1]!.id,
          FIELD.appliedChunk,
          chunkPrint(lastOf(cursor), rows.slice(0, upTo)),
        );
      await claimNow(c4, cursor);
      await attempt(0, rows.length); // the first attempt's whole chunk reached partition 0
      await attempt(1, 1); // the retry's chunk of one row reached partition 1
      expect(await acts4.drainBatch({ owner })).toMatchObject({ outcome: 'applied' });
      await drainAll(acts4);
      expect(divergences).toEqual([]);
      expect(compareSnapshots(await sourceFeatures(c4.pool), await storeFeatures(c4.redis, c4.keys))).toEqual([]);
    } finally {
      await c4.close();
    }
  });

  it('more than one chunk ahead cannot be checked against the outbox: rebuilt', async () => {
    const { acts, divergences } = await seededStoreCountingDivergences();
    const { row, cursor } = await soldOutRow(acts);
    await restock(row, 50);
    await c.pool.query(`update shop.inventory set on_hand = on_hand + 1 where (sku_id, fc_id) <> ($1, $2)`, [
      row.sku_id,
      row.fc_id,
    ]);
    // two chunks of one batch, each committed; then both commits lost (the rows kept)
    expect(await acts.drainBatch({ owner, maxRows: 1 })).toMatchObject({ outcome: 'applied', rows: 1 });
    expect(await acts.drainBatch({ owner, maxRows: 1 })).toMatchObject({ outcome: 'applied', rows: 1 });
    await restoreCursorRow(c.pool, cursor);
    expect(await acts.drainBatch({ owner })).toMatchObject({ outcome: 'repaired', storeIncomplete: true });
    expect(divergences).toEqual(['ahead']);
  });
});
