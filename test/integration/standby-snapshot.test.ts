/**
 * A hot standby's snapshots do not list the transactions running on the primary
 * (pg_current_snapshot() on a standby: xip empty), so a transaction still open reads as seen. The
 * trigger capture's backfill and verify compare outbox txids against their snapshot, so they take
 * it on the primary whatever REPLICA_DATABASE_URL names (snapshotSource). Real servers: a private
 * primary and its streaming standby (test/support/private-postgres.ts).
 */
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { snapshotSource } from '../../activities/backfill/snapshot';
import { eventually } from '../support/env';
import { PrivatePostgres } from '../support/private-postgres';

const primary = await PrivatePostgres.create('standby-snapshot');
const standby = await primary.standby();
const primaryPool = new pg.Pool({ connectionString: primary.url('postgres'), max: 4 });
const standbyPool = new pg.Pool({ connectionString: standby.url('postgres'), max: 4 });
afterAll(async () => {
  await Promise.all([primaryPool.end(), standbyPool.end()]);
  await standby.destroy();
  await primary.destroy();
});

describe('snapshots on a hot standby', () => {
  it("claim a transaction still open on the primary as seen, so the trigger capture's snapshots are the primary's", async () => {
    await primaryPool.query('create table t (x int)');
    const open = await primaryPool.connect();
    try {
      await open.query('begin');
      await open.query('insert into t values (1)');
      const xid = (await open.query<{ x: string }>('select pg_current_xact_id()::text as x')).rows[0]!.x;
      // a later commit, replayed on the standby, moves its snapshots' xmax past the open one
      await primaryPool.query('insert into t values (2)');
      await eventually(
        async () => Number((await standbyPool.query('select count(*) from t')).rows[0].count) === 1,
        10_000,
        'the standby to replay the later commit',
      );
      const seen = async (pool: pg.Pool) =>
        (await pool.query<{ v: boolean }>('select pg_visible_in_snapshot($1::xid8, pg_current_snapshot()) as v', [xid]))
          .rows[0]!.v;
      expect(await seen(primaryPool)).toBe(false);
      expect(await seen(standbyPool)).toBe(true); // PostgreSQL's behaviour: why a standby is not used
      await open.query('rollback');
    } finally {
      open.release();
    }

    // so the trigger capture's backfill and verify take their snapshots on the primary, standby or not
    expect(snapshotSource('trigger', primaryPool, standbyPool)).toEqual({ pool: primaryPool, replicaSet: true });
    expect(snapshotSource('trigger', primaryPool, primaryPool)).toEqual({ pool: primaryPool, replicaSet: false });
    // capture from the WAL reads replicas between watermarks, never by these snapshots
    expect(snapshotSource('logical', primaryPool, standbyPool).pool).toBe(standbyPool);
  });
});
