/**
 * Reading a source's rows from its read replica (a streaming standby): a read there is only as new
 * as what the replica has replayed, so a reader first waits until the replica has replayed up to a
 * position of the primary's WAL it must see.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';

/** How long a reader waits for the replica before it fails (and its activity is retried). */
const REPLAY_WAIT_MS = 30_000;

/**
 * The primary's WAL position now: everything committed so far is at or before it. The insert
 * position, not the write position (pg_current_wal_lsn): a transaction committed with
 * synchronous_commit = off (an OLTP may run so) returns before its WAL is written, and a replica
 * that replayed only up to the write position would not show it, while a read there would take
 * the chunk's snapshot for one that saw it.
 */
export async function primaryWalLsn(primary: pg.ClientBase): Promise<string> {
  return (await primary.query<{ lsn: string }>(`select pg_current_wal_insert_lsn()::text as lsn`)).rows[0]!.lsn;
}

/** Waits until the replica has replayed up to `lsn`. */
export async function waitForReplay(replica: pg.ClientBase, lsn: string, what: string): Promise<void> {
  const deadline = Date.now() + REPLAY_WAIT_MS;
  for (;;) {
    const r = await replica.query<{ ok: boolean }>(`select pg_last_wal_replay_lsn() >= $1::pg_lsn as ok`, [lsn]);
    if (r.rows[0]?.ok) return;
    if (Date.now() > deadline)
      throw new Error(
        `the replica of ${what} did not replay the source's WAL up to ${lsn} within ${REPLAY_WAIT_MS / 1000} s`,
      );
    await sleep(10);
  }
}
