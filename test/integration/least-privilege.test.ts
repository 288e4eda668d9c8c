/**
 * Least privilege (issue 12, sql/least-privilege.sql, applied by the test set-up): the services'
 * role writes the shop tables and cannot touch the outbox; the worker's role runs the whole
 * pipeline (drain, compaction with VACUUM, backfill, verify and its repairs, SKU rebuild) and
 * cannot write a shop table.
 */
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activitiesFor } from '../support/activities';
import { BACKFILL_TABLES } from '../../activities/backfill/backfill';
import { createPool } from '../../db/pool';
import { compareSnapshots } from '../../reconcile/compare';
import { sourceFeatures } from '../../reconcile/source-features';
import { storeFeatures } from '../../reconcile/store-features';
import { resetState, testClients, TEST_DATABASE_URL } from '../support/env';
import { seedMinimal } from '../support/source';
import { workerRoleUrl } from '../support/worker-process';
import { beginHold, releaseHold } from '../../outbox';

const c = testClients();
const asRole = (role: string) => {
  const u = new URL(TEST_DATABASE_URL);
  u.username = role;
  return createPool(u.toString(), 4);
};
const oltp = asRole('fresh_badges_oltp');
const worker = createPool(workerRoleUrl(TEST_DATABASE_URL), 10);
const acts = activitiesFor({ ...c, pool: worker, sourcePool: worker });
const owner = 'least-privilege-test';
afterAll(async () => {
  await oltp.end();
  await worker.end();
  await c.close();
});
beforeAll(async () => {
  await resetState(c);
  expect((await worker.query('select current_user as u')).rows[0].u).toBe('fresh_badges_worker');
});

const denied = (p: Promise<unknown>) => expect(p).rejects.toMatchObject({ code: '42501' }); // insufficient_privilege
const mismatches = async () => compareSnapshots(await sourceFeatures(c.pool), await storeFeatures(c.redis, c.keys));
async function drainAll() {
  for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') return;
}

describe('least privilege', () => {
  it('the services write the shop tables, and their changes reach the outbox only through the capture functions', async () => {
    await seedMinimal(oltp);
    await oltp.query(`update shop.inventory set on_hand = 3 where sku_id = 'S1' and fc_id = 'F1'`);
    expect((await c.pool.query(`select count(*)::int as n from pipeline.outbox`)).rows[0].n).toBeGreaterThan(5);
    await denied(
      oltp.query(
        `insert into pipeline.outbox (tbl, op, key, image) values ('skus', 'I', 'FORGED', '{"sku_id":"FORGED","lifecycle":"active"}')`,
      ),
    );
    await denied(oltp.query(`select * from pipeline.outbox`));
    await denied(oltp.query(`delete from pipeline.outbox`));
    await denied(oltp.query(`update pipeline.consumer_offsets set last_id = 0`));
    await denied(oltp.query(`select pipeline.refresh_sku('S1')`));
  });

  it('the worker runs the pipeline: drain, SKU rebuild, backfill, verify with repairs, compaction with VACUUM', async () => {
    await acts.acquireDrainLease({ owner });
    await drainAll();
    expect(await mismatches()).toEqual([]);
    // SKU rebuild and re-emission through the SECURITY DEFINER functions (FOR SHARE needs UPDATE).
    expect((await acts.refreshSku({ sku: 'S1' })).rows).toBe(3);
    await c.redis.hset(c.keys.sku('S2'), 'F1', '5|1'); // stock the source does not have
    const repaired = await acts.verifyAndRepair({ sample: 10, settleMs: 2000 });
    expect(repaired.reemitted.deleted).toBe(1);
    await drainAll();
    expect(await mismatches()).toEqual([]);
    // Backfill reads the shop tables.
    await c.redis.del(c.keys.sku('S1'));
    for (const table of BACKFILL_TABLES) await acts.backfillChunk({ table, after: null, limit: 100 });
    await acts.backfillLoads();
    expect(await mismatches()).toEqual([]);
    // Compaction prunes the outbox and VACUUMs it (the worker owns it).
    await c.pool.query(`update pipeline.outbox set created_at = now() - interval '30 days'`);
    const before = (
      await c.pool.query(
        `select coalesce(vacuum_count, 0) as n from pg_stat_user_tables where schemaname = 'pipeline' and relname = 'outbox'`,
      )
    ).rows[0].n;
    const pruned = await acts.compactOutbox({ retentionMs: 1000 });
    expect(pruned.deleted).toBeGreaterThan(0);
    await sleep(700); // statistics are reported asynchronously
    expect(
      Number(
        (
          await c.pool.query(
            `select vacuum_count as n from pg_stat_user_tables where schemaname = 'pipeline' and relname = 'outbox'`,
          )
        ).rows[0].n,
      ),
    ).toBeGreaterThan(Number(before));
  });

  // Compaction reads the replays' holds on every run: an install whose roles were set up before
  // migration 019 must not need `migrate --roles` again before compaction works.
  it("migration 019 grants the worker the replays' holds where its role exists", async () => {
    await c.pool.query(`revoke all on pipeline.outbox_holds from fresh_badges_worker`);
    await denied(beginHold(worker, 'replay-least-privilege', '1'));
    await c.pool.query(fs.readFileSync(path.join(__dirname, '../../migrations/019_outbox_holds.sql'), 'utf8'));
    expect(await beginHold(worker, 'replay-least-privilege', '1')).toMatch(/^\d+$/);
    await releaseHold(worker, 'replay-least-privilege');
    await acts.compactOutbox({ retentionMs: 1000 });
  });

  it('the worker cannot write, lock or lock-read a shop table', async () => {
    await denied(worker.query(`update shop.skus set lifecycle = 'active'`));
    await denied(worker.query(`insert into shop.inventory values ('X', 'F1', 1, 0, now())`));
    await denied(worker.query(`delete from shop.orders`));
    await denied(worker.query(`select * from shop.skus for share`));
    const client: pg.PoolClient = await worker.connect();
    try {
      await client.query('begin');
      await denied(client.query(`lock table shop.inventory in share mode`));
    } finally {
      await client.query('rollback');
      client.release();
    }
  });
});
