/**
 * The drain's pass connection (activities/drain/pass-connection.ts) against the real PostgreSQL:
 * a chained pass's BEGIN goes with the last COMMIT and the next pass runs in that transaction; a
 * next pass begun and not run is rolled back by close(); a failure rolls back and lets go.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PassConnection } from '../../activities/drain/pass-connection';
import { TEST_DATABASE_URL } from '../support/env';

const LOCK = 907_431_266;
const TABLE = 'public.pass_connection_test';
const BEGIN = `begin; select pg_try_advisory_xact_lock(${LOCK}) as ok; select pg_backend_pid() as pid, txid_current_if_assigned() as xid`;

describe('a drain pass connection', () => {
  let pool: pg.Pool;
  let other: pg.Client;

  beforeAll(async () => {
    pool = new pg.Pool({ connectionString: TEST_DATABASE_URL, max: 2 });
    other = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await other.connect();
    await other.query(`drop table if exists ${TABLE}; create table ${TABLE} (n int not null)`);
  });
  afterAll(async () => {
    await other.query(`drop table if exists ${TABLE}`);
    await other.end();
    await pool.end();
  });

  /** Whether another session can take the pass lock now (and lets it go again). */
  async function lockFree(): Promise<boolean> {
    const { rows } = await other.query(`select pg_try_advisory_lock(${LOCK}) as ok`);
    if (rows[0].ok) await other.query(`select pg_advisory_unlock(${LOCK})`);
    return rows[0].ok;
  }
  const committed = async () =>
    (await other.query<{ n: number }>(`select n from ${TABLE} order by n`)).rows.map((r) => r.n);

  it('sends the next BEGIN with the COMMIT, and runs the next pass in that transaction', async () => {
    await other.query(`truncate ${TABLE}`);
    const conn = new PassConnection(pool, BEGIN, 3);
    let firstPid = 0;
    await conn.run(async (client, begun) => {
      const [, lock, who] = begun as pg.QueryResult[];
      expect(lock!.rows[0].ok).toBe(true);
      firstPid = who!.rows[0].pid;
      await client.query(`insert into ${TABLE} values (1)`);
      return { result: null, end: `insert into ${TABLE} values (2)`, chain: true };
    });
    // the first pass committed, its last statement with it; the next pass's BEGIN holds the lock
    expect(await committed()).toEqual([1, 2]);
    expect(await lockFree()).toBe(false);
    const sentBefore = performance.now();
    await conn.run(async (client, begun, t0) => {
      const [, lock, who] = begun as pg.QueryResult[];
      expect(lock!.rows[0].ok).toBe(true);
      expect(who!.rows[0].pid).toBe(firstPid); // the same session, begun with the last commit
      expect(who!.rows[0].xid).toBeNull(); // a new transaction: the first one's id is not its
      expect(t0).toBeLessThan(sentBefore); // ages count from when that BEGIN was sent
      await client.query(`insert into ${TABLE} values (3)`);
      return { result: null, end: null, chain: false };
    });
    expect(await committed()).toEqual([1, 2, 3]);
    expect(await lockFree()).toBe(true);
    expect(pool.totalCount - pool.idleCount).toBe(0); // let go after an unchained pass
  });

  it('rolls back a next pass begun and not run when closed', async () => {
    await other.query(`truncate ${TABLE}`);
    const conn = new PassConnection(pool, BEGIN, 3);
    await conn.run(async () => ({ result: null, end: `insert into ${TABLE} values (1)`, chain: true }));
    expect(await lockFree()).toBe(false);
    await conn.close();
    expect(await lockFree()).toBe(true);
    expect(await committed()).toEqual([1]);
    expect(pool.totalCount - pool.idleCount).toBe(0);
    await conn.close(); // twice: nothing left to do
  });

  it('rolls back and lets go when the pass or its last statement fails', async () => {
    await other.query(`truncate ${TABLE}`);
    const conn = new PassConnection(pool, BEGIN, 3);
    await expect(
      conn.run(async (client) => {
        await client.query(`insert into ${TABLE} values (1)`);
        return { result: null, end: 'select 1 / 0', chain: true };
      }),
    ).rejects.toThrow(/division by zero/);
    await expect(
      conn.run(async (client) => {
        await client.query(`insert into ${TABLE} values (2)`);
        throw new Error('the pass failed');
      }),
    ).rejects.toThrow('the pass failed');
    expect(await committed()).toEqual([]);
    expect(await lockFree()).toBe(true);
    expect(pool.totalCount - pool.idleCount).toBe(0);
    // and the connection goes on: a later pass runs as usual
    await conn.run(async (client) => {
      await client.query(`insert into ${TABLE} values (3)`);
      return { result: null, end: null, chain: false };
    });
    expect(await committed()).toEqual([3]);
  });
});
