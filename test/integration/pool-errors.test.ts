/**
 * A PostgreSQL connection that dies while a client is checked out between queries (what a server
 * restart does: "terminating connection due to administrator command") must not kill the process:
 * with no 'error' listener on that client, Node throws the event as an uncaught exception (issue 12,
 * where it took `npm start` and its read API down).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { createPool } from '../../db/pool';
import { TEST_DATABASE_URL } from '../support/env';

const pool = createPool(TEST_DATABASE_URL, 2);
afterAll(() => pool.end());

describe('pg pool error paths', () => {
  // A worker's host gone without closing its sockets left its backend, and the drain lock its open
  // transaction holds, for the server's OS default (about two hours): the server probes instead.
  it('its connections have the server probe a silent client within seconds', async () => {
    const r = await pool.query<{ idle: string; interval: string; count: string }>(
      `select current_setting('tcp_keepalives_idle') as idle, current_setting('tcp_keepalives_interval') as interval,
              current_setting('tcp_keepalives_count') as count`,
    );
    // (over TCP, as here; a Unix socket has no keepalives and shows 0)
    expect(r.rows[0]).toEqual({ idle: '10', interval: '5', count: '3' });
  });

  it('a checked-out client whose backend is terminated emits an error that is handled', async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      const client = await pool.connect();
      const pid = (await client.query('select pg_backend_pid() as pid')).rows[0].pid;
      const killer = createPool(TEST_DATABASE_URL, 1);
      await killer.query('select pg_terminate_backend($1)', [pid]);
      await killer.end();
      await sleep(300); // the 'error' event arrives on the idle client
      await expect(client.query('select 1')).rejects.toThrow();
      client.release(true);
      expect(uncaught).toEqual([]);
      expect((await pool.query('select 1 as one')).rows[0].one).toBe(1); // the pool carries on
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });
});
