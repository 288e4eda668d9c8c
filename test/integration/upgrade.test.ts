/**
 * Upgrading an install of the horizon drain ((txid, id) cursor) to the snapshot-delta drain in the
 * middle of a backlog, with a transaction open across the upgrade and the old drain's crash window
 * (Redis ahead of its cursor) left behind: nothing lost, nothing applied twice, landing included.
 */
import type { StoreRedis } from '../../store/redis-client';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activitiesFor } from '../support/activities';
import { landingDir } from '../../activities/export/day-inputs';
import { openDuck } from '../../activities/export/duckdb';
import { ensureDatabase, migrate, MIGRATIONS_DIR } from '../../db/migrate';
import { featureUpdatesFrom, OutboxRow } from '../../features/from-source';
import { FeatureUpdate } from '../../features/definitions';
import { compareSnapshots } from '../../reconcile/compare';
import { sourceFeatures } from '../../reconcile/source-features';
import { storeFeatures } from '../../reconcile/store-features';
import { CatalogueSize, seedCatalogue } from '../../simulator/catalogue';
import { runTraffic } from '../../simulator/traffic';
import { applyUpdates } from '../../store/apply';
import { StoreKeys } from '../../store/keys';
import { pipelineClients, TEST_DATABASE_URL, testClients } from '../support/env';

const UPGRADE_URL = TEST_DATABASE_URL.replace(/\/[^/]+$/, '/fresh_badges_upgrade_test');
const c = testClients({
  DATABASE_URL: UPGRADE_URL,
  REDIS_PREFIX: 'fbu:',
  EXPORT_DIR: `.data/test/upgrade-${process.pid}`,
});
const size: CatalogueSize = { skus: 200, fcs: 4, regions: 2, fcsPerRegion: 2, fcsPerSku: 2 };

beforeAll(async () => {
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL.replace(/\/[^/]+$/, '/postgres') });
  await admin.connect();
  await admin.query('drop database if exists fresh_badges_upgrade_test with (force)');
  await admin.end();
  await ensureDatabase(UPGRADE_URL);
  // The schema as the horizon drain knew it: migrations up to 004.
  const oldDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fb-migrations-'));
  for (const f of fs.readdirSync(MIGRATIONS_DIR).filter((f) => f < '005'))
    fs.copyFileSync(path.join(MIGRATIONS_DIR, f), path.join(oldDir, f));
  await migrate(c.pool, oldDir);
  for (const k of await c.redis.keys('fbu:*')) await c.redis.del(k);
  await c.redis.set(c.keys.partitions[0].epoch, 'upgrade-test');
  fs.rmSync(c.config.EXPORT_DIR, { recursive: true, force: true });
});
afterAll(() => c.close());

/** What the horizon drain did per batch: read below the horizon in (txid, id) order and apply. */
async function oldDrainBatch(
  pool: pg.Pool,
  redis: StoreRedis,
  keys: StoreKeys,
  cursor: { txid: string; id: string },
  limit: number,
) {
  const rows = (
    await pool.query<OutboxRow>(
      `select o.id::text as id, o.txid::text as txid, o.tbl, o.op, o.key, o.image, o.old_image, (extract(epoch from o.created_at) * 1000)::float8 as created_ms
         from pipeline.outbox o
        where (o.txid, o.id) > ($1::xid8, $2::bigint) and o.txid < (select pg_snapshot_xmin(pg_current_snapshot()))
        order by o.txid, o.id limit $3`,
      [cursor.txid, cursor.id, limit],
    )
  ).rows;
  const rowUpdates: { update: FeatureUpdate; source: number }[] = [];
  for (const [i, row] of rows.entries()) {
    for (const u of featureUpdatesFrom(row)) {
      if (u.feature !== 'fc.load') rowUpdates.push({ update: u, source: i });
      // Its load counters kept only (t, i), guarded by (txid, id).
      else
        await redis.eval(
          `local p = redis.call('HMGET', KEYS[1], 't', 'i')
           local ct, ci, t, id = tonumber(p[1]), tonumber(p[2]), tonumber(ARGV[2]), tonumber(ARGV[3])
           if ct and (t < ct or (t == ct and id <= ci)) then return 0 end
           redis.call('HINCRBY', KEYS[1], 'n', ARGV[1])
           redis.call('HSET', KEYS[1], 't', ARGV[2], 'i', ARGV[3])
           return 1`,
          1,
          keys.partitions[0].load(u.fc, u.day),
          u.delta,
          u.txid,
          u.id,
        );
    }
  }
  await applyUpdates(redis, keys, rowUpdates, { chunk: 100, tombstoneTtlS: 3600, loadTtlS: 3 * 86400 });
  return rows.length ? { txid: rows[rows.length - 1].txid, id: rows[rows.length - 1].id } : cursor;
}

describe('upgrade from the (txid, id) cursor', () => {
  it('mid-backlog, with a transaction open across it and the old crash window: nothing lost or doubled, landing too', async () => {
    await seedCatalogue(c.pool, size);
    await runTraffic(c.pool, { rate: 0, changes: 1500, connections: 4, seed: 41, size });
    // A transaction that stays open across the upgrade (it holds the old horizon).
    const open = new pg.Client({ connectionString: UPGRADE_URL });
    await open.connect();
    try {
      await open.query('begin');
      await open.query(
        `insert into shop.orders (sku_id, fc_id, qty, status) values ('SKU-0000001', 'FC-000', 7, 'placed')`,
      );
      await runTraffic(c.pool, { rate: 0, changes: 1500, connections: 4, seed: 42, size });

      // The old drain works off part of the backlog ...
      let cursor = { txid: '0', id: '0' };
      await c.pool.query(`insert into pipeline.consumer_offsets (consumer) values ('redis-online-store'), ('landing')`);
      for (let i = 0; i < 4; i++) cursor = await oldDrainBatch(c.pool, c.redis, c.keys, cursor, 300);
      await c.pool.query(
        `update pipeline.consumer_offsets set txid = $1::xid8, id = $2 where consumer = 'redis-online-store'`,
        [cursor.txid, cursor.id],
      );
      // ... and dies after applying one more batch to Redis, before moving its cursor.
      await oldDrainBatch(c.pool, c.redis, c.keys, cursor, 300);
      // The landing consumer had landed a little less.
      const landed = (
        await c.pool.query(
          `select o.txid::text as txid, o.id::text as id from pipeline.outbox o order by o.txid, o.id offset 500 limit 1`,
        )
      ).rows[0];
      await c.pool.query(`update pipeline.consumer_offsets set txid = $1::xid8, id = $2 where consumer = 'landing'`, [
        landed.txid,
        landed.id,
      ]);
      const backlogBefore = (
        await c.pool.query(`select count(*)::int as n from pipeline.outbox where (txid, id) > ($1::xid8, $2::bigint)`, [
          cursor.txid,
          cursor.id,
        ])
      ).rows[0].n;
      expect(backlogBefore).toBeGreaterThan(1000);

      // The upgrade of the cursor (005 to 007) with the transaction still open ...
      const upTo007 = fs.mkdtempSync(path.join(os.tmpdir(), 'fb-migrations-'));
      for (const f of fs.readdirSync(MIGRATIONS_DIR).filter((f) => f < '008'))
        fs.copyFileSync(path.join(MIGRATIONS_DIR, f), path.join(upTo007, f));
      const migrated = await migrate(c.pool, upTo007);
      expect(migrated.applied).toContain('005_snapshot_delta_cursor.sql');
      // ... 008 adds a column to the outbox, which waits for no transaction that wrote it: it
      // fails after its lock timeout, with a hint, and succeeds once the transaction is over.
      await expect(migrate(c.pool)).rejects.toThrow(/transaction that wrote the table it changes is still open/);
      await open.query('commit');
      expect((await migrate(c.pool)).applied).toEqual([
        '008_drain_shards.sql',
        '009_outbox_route_index.notx.sql',
        '010_reshard_freeze_owner.sql',
        '011_capture_progress.sql',
        '012_capture_chunks.sql',
        '013_dead_letter_discard.sql',
        '014_capture_generation.sql',
        '015_capture_confirms_recorded.sql',
        '016_capture_last_transaction.sql',
        '017_outbox_truncates_index.notx.sql',
        '018_drain_snapshots_xmax_index.notx.sql',
        '019_outbox_holds.sql',
        '020_capture_publication_gap.sql',
        '021_capture_publication_fingerprint.sql',
        '022_capture_gap_xmax.sql',
        '023_capture_chunk_token.sql',
        '024_capture_tables_fingerprint.sql',
      ]);
      const acts = activitiesFor(pipelineClients(c));
      await acts.acquireDrainLease({ owner: 'upgrade-test' });
      const drainAll = async () => {
        for (;;) if ((await acts.drainBatch({ owner: 'upgrade-test', maxRows: 250 })).outcome !== 'applied') return;
      };
      await drainAll();
      await runTraffic(c.pool, { rate: 0, changes: 500, connections: 4, seed: 43, size });
      await drainAll();
      expect(compareSnapshots(await sourceFeatures(c.pool), await storeFeatures(c.redis, c.keys))).toEqual([]);

      // Landing: every change after the old landing position, exactly once.
      for (;;) if (!(await acts.landChanges()).more) break;
      const duck = await openDuck('256MB');
      try {
        const glob = path.join(landingDir(c.config.EXPORT_DIR, '*'), '*.parquet');
        const r = await duck.conn.runAndReadAll(
          `select count(*)::int as n, count(distinct (txid, id))::int as d from read_parquet('${glob}')`,
        );
        const [[n, d]] = r.getRows() as number[][];
        const expected = (
          await c.pool.query(
            `select count(*)::int as n from pipeline.outbox where (txid, id) > ($1::xid8, $2::bigint)`,
            [landed.txid, landed.id],
          )
        ).rows[0].n;
        expect(d).toBe(expected);
        expect(n).toBe(d);
      } finally {
        duck.close();
      }
    } finally {
      await open.end();
    }
  });
});
