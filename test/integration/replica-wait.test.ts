/**
 * A read from a source's replica waits until the replica has replayed the primary's WAL up to a
 * position every commit so far is at or before (capture/replica.ts): also commits made with
 * synchronous_commit = off, which return before their WAL is written.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLsn } from '../../capture/pgoutput';
import { primaryWalLsn } from '../../capture/replica';
import { TEST_DATABASE_URL } from '../support/env';

describe('the primary position a replica read waits for', () => {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  beforeAll(async () => {
    await client.connect();
    await client.query(`create table if not exists public.fb_async_commits (n int)`);
  });
  afterAll(async () => {
    await client.query(`drop table if exists public.fb_async_commits`);
    await client.end();
  });

  it('is past every commit made with synchronous_commit = off', async () => {
    await client.query(`set synchronous_commit = off`);
    for (let i = 0; i < 20; i++) {
      await client.query(`insert into public.fb_async_commits values ($1)`, [i]);
      const inserted = (await client.query(`select pg_current_wal_insert_lsn()::text as l`)).rows[0].l as string;
      expect(parseLsn(await primaryWalLsn(client))).toBeGreaterThanOrEqual(parseLsn(inserted));
    }
  });
});
