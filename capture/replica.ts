/**
 * Reading a source's rows from its read replica (a streaming standby): a read there is only as new
 * as what the replica has replayed, so a reader first waits until the replica has replayed up to a
 * position of the primary's WAL it must see.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { parseLsn } from './pgoutput';

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

/**
 * The replica holds WAL the primary has not written: it does not follow this primary's history (the
 * primary was restored from an older backup, or failed over to a standby that had received less),
 * and what it serves may hold changes the source no longer has. Readers use the primary instead.
 */
export class ReplicaNotFollowingError extends Error {
  override name = 'ReplicaNotFollowing';
}

/**
 * Waits until the replica has replayed up to `lsn` (the primary's position read before), then
 * checks that it follows the primary: a follower never holds WAL past the primary's position read
 * after it (`primaryLsnNow`). Throws ReplicaNotFollowingError otherwise. (Not seen: a replica
 * left on an old history whose end the primary's new history happened to pass between the two
 * reads of the primary's position; once past it, such a replica never reaches `lsn` and times out.)
 */
export async function waitForReplay(
  replica: pg.ClientBase,
  lsn: string,
  what: string,
  primaryLsnNow: () => Promise<string>,
): Promise<void> {
  const deadline = Date.now() + REPLAY_WAIT_MS;
  for (;;) {
    const r = await replica.query<{ ok: boolean; had: string }>(
      `select pg_last_wal_replay_lsn() >= $1::pg_lsn as ok,
              greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text as had`,
      [lsn],
    );
    if (r.rows[0]?.ok) {
      const primaryNow = await primaryLsnNow();
      if (parseLsn(r.rows[0].had) > parseLsn(primaryNow))
        throw new ReplicaNotFollowingError(
          `the replica of ${what} holds WAL up to ${r.rows[0].had}, past the primary's ${primaryNow}: it does not follow this primary (restored from a backup, or failed over); reading the primary instead. Rebuild the replica from the primary (pg_basebackup)`,
        );
      return;
    }
    if (Date.now() > deadline)
      throw new Error(
        `the replica of ${what} did not replay the source's WAL up to ${lsn} within ${REPLAY_WAIT_MS / 1000} s`,
      );
    await sleep(10);
  }
}
