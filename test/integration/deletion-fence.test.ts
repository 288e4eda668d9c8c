/**
 * No deleted row comes back (issue 11, point 7): once a field tombstone is swept or a discontinued
 * SKU's key has expired, neither a backfill chunk read at an older snapshot (a lagging replica)
 * nor a retried old dead letter may write the deleted row back. The "replica" here is a real
 * REPEATABLE READ transaction opened before the delete: its rows and snapshot are exactly what a
 * replica that had not replayed the delete would hand the backfill.
 */
import type pg from 'pg';
import { backfillEverything } from '../support/backfill';
import { beforeEach, describe, expect, it } from 'vitest';
import { usePipeline } from '../support/pipeline-fixture';
import {
  backfillChunk,
  fillFromSnapshot,
  positionsBeforeRead,
  StaleSnapshotError,
} from '../../activities/backfill/backfill';
import { createPool } from '../../db/pool';
import { TEST_DATABASE_URL } from '../support/env';
import { LOGICAL_RUN } from '../support/logical-run';
import { applyUpdates } from '../../store/apply';
import { readyMasterNodes } from '../../store/redis-client';
import { compareSnapshots } from '../../reconcile/compare';
import { sourceFeatures } from '../../reconcile/source-features';
import { storeFeatures } from '../../reconcile/store-features';
import { seedMinimal } from '../support/source';
import { createBadgeReader } from '../../serving/badge-reader';
import { advanceFence } from '../../store/fence';
import { rebuildStore } from '../../store/rebuild';
import { drainShard, readCursor, shardKeys, shardOfPartition } from '../../outbox';

const owner = 'deletion-fence-test';
const { c, acts } = usePipeline('deletion-fence', { lease: owner });
const opts = { chunk: 100, tombstoneTtlS: c.config.TOMBSTONE_TTL_S, loadTtlS: c.config.LOAD_TTL_S };
beforeEach(async () => {
  await seedMinimal(c.pool);
  await drainAll();
});

async function drainAll() {
  for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') return;
}
/** FLUSHDB on every master (a cluster client's own flushdb reaches one node). */
const flushStore = async () => Promise.all((await readyMasterNodes(c.redis)).map((node) => node.flushdb()));
const mismatches = async () => compareSnapshots(await sourceFeatures(c.pool), await storeFeatures(c.redis, c.keys));

/** A lagging replica's view: a snapshot taken now, kept open while the primary moves on. */
async function laggingReplica(): Promise<{
  read(
    table: 'inventory' | 'skus',
  ): Promise<{ rows: Record<string, unknown>[]; snapshot: { text: string; xmin: bigint } }>;
  close(): Promise<void>;
}> {
  const client: pg.PoolClient = await c.pool.connect();
  await client.query('begin isolation level repeatable read read only');
  const s = (
    await client.query(`select pg_current_snapshot()::text as s, pg_snapshot_xmin(pg_current_snapshot())::text as xmin`)
  ).rows[0];
  return {
    async read(table) {
      const rows = (await client.query(`select to_jsonb(t) as image from shop.${table} t order by 1`)).rows.map(
        (r) => r.image,
      );
      return { rows, snapshot: { text: s.s, xmin: BigInt(s.xmin) } };
    },
    async close() {
      await client.query('rollback');
      client.release();
    },
  };
}

/** The inventory as a replica read it just before S1·F1 was deleted; the delete is drained (a tombstone). */
async function readThenDeleteS1F1() {
  const replica = await laggingReplica();
  const old = await replica.read('inventory');
  await replica.close();
  await c.pool.query(`delete from shop.inventory where sku_id = 'S1' and fc_id = 'F1'`);
  await drainAll();
  expect(await c.redis.hget(c.keys.sku('S1'), 'F1')).toMatch(/^x\|/); // the tombstone
  return old;
}

describe('the deletion fence', () => {
  // Two snapshots with the same xmax: the later one saw 101 end. Written in either order, the
  // fence ends at the later one; an older one written late would stop it seeing 101's deletes.
  it('moves only to a snapshot that sees all it saw, the same xmax included', async () => {
    const fence = async () => Promise.all(c.keys.partitions.map((p) => c.redis.get(p.fence)));
    const all = (s: string) => c.keys.partitions.map(() => s);
    const saved = await fence();
    for (const p of c.keys.partitions) await c.redis.del(p.fence);
    await advanceFence(c.redis, c.keys, '101:105:101,103');
    expect(await advanceFence(c.redis, c.keys, '103:105:103')).toBe(true);
    expect(await advanceFence(c.redis, c.keys, '101:105:101,103')).toBe(false); // older, same xmax
    expect(await advanceFence(c.redis, c.keys, '101:105:101')).toBe(false); // neither within the other
    expect(await advanceFence(c.redis, c.keys, '100:104:')).toBe(false); // lower xmax
    expect(await fence()).toEqual(all('103:105:103'));
    expect(await advanceFence(c.redis, c.keys, '105:105:')).toBe(true);
    expect(await advanceFence(c.redis, c.keys, '105:106:')).toBe(true);
    expect(await fence()).toEqual(all('105:106:'));
    for (const [i, p] of c.keys.partitions.entries())
      if (saved[i] !== null) await c.redis.set(p.fence, saved[i]!);
      else await c.redis.del(p.fence);
  });

  it('a backfill chunk from a replica behind a swept delete is refused, and a current one is not', async () => {
    const old = await readThenDeleteS1F1();
    expect((await acts.sweepTombstones({})).removed).toBe(1);
    expect(await c.redis.hexists(c.keys.sku('S1'), 'F1')).toBe(0);

    // The stale chunk would fill the swept field back in with stock 10: refused, loudly.
    await expect(fillFromSnapshot(c.redis, c.keys, opts, 'inventory', old.rows, old.snapshot)).rejects.toBeInstanceOf(
      StaleSnapshotError,
    );
    expect(await c.redis.hexists(c.keys.sku('S1'), 'F1')).toBe(0);
    expect(await mismatches()).toEqual([]);

    // The retry reads again at a current snapshot: accepted (nothing absent to fill, no refusal).
    const fresh = await laggingReplica();
    const now = await fresh.read('inventory');
    await fresh.close();
    await expect(fillFromSnapshot(c.redis, c.keys, opts, 'inventory', now.rows, now.snapshot)).resolves.toBe(0);
    expect(await mismatches()).toEqual([]);
  });

  // A STORE_PARTITIONS change empties the store at worker start with no drain position to fence
  // from: the tombstones go, so until the drain's next batch no snapshot is known to see them.
  it('a store emptied with no drain position refuses a stale chunk before and after its next batch', async () => {
    const old = await readThenDeleteS1F1();
    await rebuildStore(c.redis, c.keys, null);
    expect(await c.redis.exists(c.keys.sku('S1'))).toBe(0);

    await expect(fillFromSnapshot(c.redis, c.keys, opts, 'inventory', old.rows, old.snapshot)).rejects.toBeInstanceOf(
      StaleSnapshotError,
    );
    expect(await c.redis.hexists(c.keys.sku('S1'), 'F1')).toBe(0);
    await drainAll(); // the position check sets the fence from the cursor's snapshot
    for (const p of c.keys.partitions) expect(await c.redis.get(p.fence)).toMatch(/^\d+:\d+:/);
    await expect(fillFromSnapshot(c.redis, c.keys, opts, 'inventory', old.rows, old.snapshot)).rejects.toBeInstanceOf(
      StaleSnapshotError,
    );
    const fresh = await laggingReplica();
    const now = await fresh.read('inventory');
    await fresh.close();
    await expect(fillFromSnapshot(c.redis, c.keys, opts, 'inventory', now.rows, now.snapshot)).resolves.toBeGreaterThan(
      0,
    );
    expect(await c.redis.hexists(c.keys.sku('S1'), 'F1')).toBe(0);
  });

  // FLUSHDB, or a Redis back with no file, takes the fence and the partitions' positions along with
  // the tombstones. Until the drain's next position check sets the fence again, a write read before
  // it must not fill an absent field: backfill-auto fills only absent fields, and would keep it.
  it('a store emptied from outside refuses a backfill chunk read before it', async () => {
    const checkedOf = await positionsBeforeRead(c.redis, c.keys);
    const old = await readThenDeleteS1F1();
    await flushStore();
    await expect(
      fillFromSnapshot(c.redis, c.keys, { ...opts, checkedOf }, 'inventory', old.rows, old.snapshot),
    ).rejects.toBeInstanceOf(StaleSnapshotError);
    expect(await c.redis.exists(c.keys.sku('S1'))).toBe(0);
  });

  // The same through backfillChunk: the partitions' positions are read before its source read,
  // and the store emptied between that read and the fill (the read's query is made to wait).
  it.skipIf(LOGICAL_RUN)('a backfill chunk whose store is emptied from outside after its read is refused', async () => {
    const source = createPool(TEST_DATABASE_URL, 1);
    let emptied = false;
    const connect = source.connect.bind(source) as () => Promise<pg.PoolClient>;
    (source as unknown as { connect: () => Promise<pg.PoolClient> }).connect = async () => {
      const client = await connect();
      const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
      (client as unknown as { query: unknown }).query = async (...args: unknown[]) => {
        const r = await query(...args);
        if (!emptied && String(args[0]).includes('to_jsonb(t)')) {
          emptied = true; // the chunk is read (S1·F1 with it): now the row goes, and then the store
          await c.pool.query(`delete from shop.inventory where sku_id = 'S1' and fc_id = 'F1'`);
          await drainAll();
          await flushStore();
        }
        return r;
      };
      return client;
    };
    try {
      await expect(
        backfillChunk(source, c.redis, c.keys, opts, { table: 'inventory', after: null, limit: 100 }),
      ).rejects.toBeInstanceOf(StaleSnapshotError);
      expect(emptied).toBe(true);
      expect(await c.redis.exists(c.keys.sku('S1'))).toBe(0);
    } finally {
      await source.end();
    }
  });

  it('a store emptied from outside refuses a replayed change into an absent field until the drain fences it', async () => {
    const { txid } = (await c.pool.query(`select max(txid)::text as txid from pipeline.outbox`)).rows[0];
    const old = { feature: 'sku.available' as const, sku: 'S1', fc: 'F1', value: 10, version: 1, txid };
    await readThenDeleteS1F1();
    await flushStore();
    const replayed = await applyUpdates(c.redis, c.keys, [{ update: old, source: 0 }], { ...opts, mode: 'replay' });
    expect(replayed.fenced).toHaveLength(1);
    expect(await c.redis.exists(c.keys.sku('S1'))).toBe(0);
    await drainAll(); // the position check sets the fence from the cursor's snapshot, which saw the change
    const again = await applyUpdates(c.redis, c.keys, [{ update: old, source: 0 }], { ...opts, mode: 'replay' });
    expect(again.fenced).toHaveLength(1);
    expect(await c.redis.exists(c.keys.sku('S1'))).toBe(0);
  });

  // Mid-batch, the batch's earlier chunks delivered rows its start snapshot does not see (a delete
  // among them, forgotten by the emptying and not delivered again): the fence is the batch's target.
  it('a store emptied with no drain position mid-batch is fenced from the batch in progress', async () => {
    await c.pool.query(`update shop.inventory set on_hand = on_hand + 1`);
    await acts.drainBatch({ owner, maxRows: 1 }); // one chunk: the batch is in progress
    const cursors = new Map(
      (
        await c.pool.query(
          `select consumer, snap_from::text as "from", snap_to::text as "to" from pipeline.consumer_offsets`,
        )
      ).rows.map((r) => [r.consumer as string, (r.to ?? r.from) as string]),
    );
    const fenceOf = (p: number) =>
      cursors.get(drainShard(shardOfPartition(p, c.config.DRAIN_SHARDS), c.config.DRAIN_SHARDS).consumer);
    expect(
      (await c.pool.query(`select count(*)::int as n from pipeline.consumer_offsets where snap_to is not null`)).rows[0]
        .n,
    ).toBeGreaterThan(0);
    await rebuildStore(c.redis, c.keys, null);
    await acts.drainBatch({ owner, maxRows: 1 });
    for (const p of c.keys.partitions) expect(await c.redis.get(p.fence)).toBe(fenceOf(p.index));
  });

  // The drain reads a batch in transaction-id order: a row's delete by an older transaction comes
  // before the image a younger one committed first (the versions, outbox ids, say the delete is
  // newer). Emptied between the two chunks, the store lost the delete's tombstone, and the image
  // wrote the row back into the absent field; the refill, filling only absent fields, kept it:
  // stock of a deleted row, fresh, for good.
  it.skipIf(LOGICAL_RUN).each([
    ['by a Redis back with no file', async () => void (await flushStore())],
    [
      "by a rebuild (the drain's, from its cursor)",
      async () => {
        const shards = c.config.DRAIN_SHARDS;
        const shard = drainShard(shardOfPartition(c.keys.ofSku('S1').index, shards), shards);
        const cursor = await readCursor(c.pool, shard.consumer);
        expect(cursor.to).not.toBeNull(); // mid-batch
        await rebuildStore(c.redis, shardKeys(c.keys, shard), cursor); // (its own partitions)
      },
    ],
  ])(
    'a store emptied mid-batch %s is not given back a deleted row by a later chunk of that batch',
    async (_how, empty) => {
      const older = await c.pool.connect();
      try {
        await older.query('begin');
        await older.query('select pg_current_xact_id()'); // its transaction id, before the younger's
        await c.pool.query(`update shop.inventory set on_hand = 55 where sku_id = 'S1' and fc_id = 'F1'`);
        await older.query(`delete from shop.inventory where sku_id = 'S1' and fc_id = 'F1'`);
        await older.query('commit');
      } finally {
        older.release();
      }
      await acts.drainBatch({ owner, maxRows: 1, maxBatchRows: 1, budgetMs: 1 }); // the delete's chunk
      expect(await c.redis.hget(c.keys.sku('S1'), 'F1')).toMatch(/^x\|/);
      await empty();
      await acts.drainBatch({ owner, maxRows: 1, maxBatchRows: 1, budgetMs: 1 }); // the image's chunk
      expect(await c.redis.hget(c.keys.sku('S1'), 'F1')).toBeNull();
      await drainAll();
      await backfillEverything(acts, 'mid-batch-refill', { drainOwner: owner });
      await drainAll();
      expect(await mismatches()).toEqual([]);
    },
  );

  it('a discontinued SKU whose key expired is not brought back by a chunk read before the discontinuation', async () => {
    const replica = await laggingReplica();
    const old = await replica.read('skus');
    await replica.close();
    await c.pool.query(`update shop.skus set lifecycle = 'discontinued' where sku_id = 'S2'`);
    await drainAll();
    await acts.sweepTombstones({}); // compaction keeps the fence recent
    await c.redis.del(c.keys.sku('S2')); // the tombstone's TTL ran out
    await expect(fillFromSnapshot(c.redis, c.keys, opts, 'skus', old.rows, old.snapshot)).rejects.toBeInstanceOf(
      StaleSnapshotError,
    );
    expect(await c.redis.exists(c.keys.sku('S2'))).toBe(0); // still unknown: no promise
  });

  it('an old dead letter retried after its row was deleted and swept does not bring the row back', async () => {
    // An inventory change Redis rejects (the SKU key has the wrong type): dead-lettered.
    await c.redis.del(c.keys.sku('S2'));
    await c.redis.rpush(c.keys.sku('S2'), 'not a hash');
    await c.pool.query(`update shop.inventory set on_hand = 7 where sku_id = 'S2' and fc_id = 'F2'`);
    await drainAll();
    expect((await c.pool.query(`select count(*)::int as n from pipeline.dead_letters`)).rows[0].n).toBe(1);
    await c.redis.del(c.keys.sku('S2')); // the operator's fix (the lifecycle comes back with the next change)
    // Then the row is deleted, drained as a tombstone, and the tombstone swept.
    await c.pool.query(`delete from shop.inventory where sku_id = 'S2' and fc_id = 'F2'`);
    await c.pool.query(`update shop.skus set lifecycle = 'paused' where sku_id = 'S2'`);
    await drainAll();
    expect((await acts.sweepTombstones({})).removed).toBe(1);

    const retried = await acts.retryDeadLetters({});
    expect(retried).toMatchObject({ retried: 1, failed: 0 });
    expect(await c.redis.hexists(c.keys.sku('S2'), 'F2')).toBe(0); // not 7 again
    await drainAll();
    expect(await mismatches()).toEqual([]);
  });

  // The fence refuses the retried reactivation (the key is gone), and the skus row is re-emitted
  // as a refresh, which brings the lifecycle back but not the stock the expired key held: the
  // retry itself must ask for the SKU's rebuild, and reads answer unknown until it is done.
  it('a dead-lettered reactivation retried after its key expired asks for the stock rebuild', async () => {
    await c.pool.query(`update shop.inventory set on_hand = 6 where sku_id = 'S2' and fc_id = 'F2'`);
    await c.pool.query(`update shop.skus set lifecycle = 'discontinued' where sku_id = 'S2'`);
    await drainAll();
    await c.redis.del(c.keys.sku('S2'));
    await c.redis.rpush(c.keys.sku('S2'), 'not a hash'); // Redis rejects the reactivation: dead-lettered
    await c.pool.query(`update shop.skus set lifecycle = 'active' where sku_id = 'S2'`);
    await drainAll();
    expect((await c.pool.query(`select count(*)::int as n from pipeline.dead_letters`)).rows[0].n).toBe(1);
    await c.redis.del(c.keys.sku('S2')); // the operator's fix: the key, with the stock it held, is gone
    await acts.sweepTombstones({}); // moves the fence past the dead letter

    expect(await acts.retryDeadLetters({})).toMatchObject({ retried: 1, reemitted: 1 });
    expect(await c.redis.sismember(c.keys.ofSku('S2').rebuilds, 'S2')).toBe(1);
    await drainAll(); // the refresh: active, and still no stock
    const reader = createBadgeReader({
      redis: c.redis,
      prefix: c.keys.prefix,
      partitions: c.keys.partitions.length,
      staleAfterMs: 3_600_000,
    });
    expect((await reader.getBadges('R1', ['S2'])).badges[0].reason).toBe('unknown');

    const { snapshot } = await acts.refreshSku({ sku: 'S2' });
    await drainAll();
    await acts.finishSkuRebuild({ sku: 'S2', snapshot });
    expect(await mismatches()).toEqual([]);
    expect(await c.redis.hget(c.keys.sku('S2'), 'F2')).toMatch(/^6\|/);
    expect((await reader.getBadges('R1', ['S2'])).badges[0].reason).toBe('eligible');
  });

  // The same for a dead-lettered insert: its stock, drained normally, expired with the key.
  it('a dead-lettered insert retried after its key expired asks for the stock rebuild', async () => {
    await c.redis.rpush(c.keys.sku('S3'), 'not a hash'); // Redis rejects the insert: dead-lettered
    await c.pool.query(`insert into shop.skus (sku_id, title, lifecycle) values ('S3', 'three', 'active')`);
    await drainAll();
    expect((await c.pool.query(`select count(*)::int as n from pipeline.dead_letters`)).rows[0].n).toBe(1);
    await c.redis.del(c.keys.sku('S3')); // the operator's fix
    await c.pool.query(`insert into shop.inventory values ('S3', 'F1', 3, 0, now())`);
    await drainAll(); // the stock, into a key with the tombstone TTL (no lifecycle yet)
    await c.redis.del(c.keys.sku('S3')); // which ran out
    await acts.sweepTombstones({}); // moves the fence past the dead letter

    expect(await acts.retryDeadLetters({})).toMatchObject({ retried: 1, reemitted: 1 });
    expect(await c.redis.sismember(c.keys.ofSku('S3').rebuilds, 'S3')).toBe(1);
    await drainAll();
    const { snapshot } = await acts.refreshSku({ sku: 'S3' });
    await drainAll();
    await acts.finishSkuRebuild({ sku: 'S3', snapshot });
    expect(await mismatches()).toEqual([]);
    expect(await c.redis.hget(c.keys.sku('S3'), 'F1')).toMatch(/^3\|/);
  });

  it('an old dead letter whose row still exists is repaired by re-emitting the current row', async () => {
    await c.redis.del(c.keys.sku('S2'));
    await c.redis.rpush(c.keys.sku('S2'), 'not a hash');
    await c.pool.query(`update shop.inventory set on_hand = 7 where sku_id = 'S2' and fc_id = 'F2'`);
    await drainAll();
    await c.redis.del(c.keys.sku('S2'));
    await c.pool.query(`update shop.inventory set on_hand = 9 where sku_id = 'S2' and fc_id = 'F2'`); // the same row, later: not dead-lettered
    await c.pool.query(`update shop.skus set lifecycle = 'paused' where sku_id = 'S2'`);
    await drainAll();
    await acts.sweepTombstones({}); // moves the fence past the dead letter
    await c.redis.hdel(c.keys.sku('S2'), 'F2'); // (the field is absent, as after a swept delete and re-insert)

    const retried = await acts.retryDeadLetters({});
    expect(retried).toMatchObject({ retried: 1, reemitted: 1 });
    expect(await c.redis.hexists(c.keys.sku('S2'), 'F2')).toBe(0); // the old image (7) was not written
    await drainAll(); // the re-emitted row: the current value, 9
    expect(await mismatches()).toEqual([]);
    expect(await c.redis.hget(c.keys.sku('S2'), 'F2')).toMatch(/^9\|/);
  });
});
