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
export async function primaryWalLsn(primary: pg.ClientBase | pg.Pool): Promise<string> {
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
  replica: pg.ClientBase | pg.Pool,
  lsn: string,
  what: string,
  primaryLsnNow: () => Promise<string>,
  waitMs = REPLAY_WAIT_MS,
): Promise<void> {
  const deadline = Date.now() + waitMs;
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
      throw new Error(`the replica of ${what} did not replay the source's WAL up to ${lsn} within ${waitMs / 1000} s`);
    await sleep(10);
  }
}

/**
 * Where an operator's one-off read of a source's rows goes (`ops inspect`, `ops explain`): its
 * replica once it has replayed what the primary had written when asked, within `waitMs`; else the
 * primary, and `why` says so (and the replica, saying so, while the primary cannot be reached). A one-row read there costs the source little, and a replica that
 * lags or no longer follows the primary would show rows the source no longer has, or not yet.
 */
export async function caughtUpReplicaOr(
  primary: pg.Pool,
  replica: pg.Pool,
  what: string,
  waitMs = 5_000,
): Promise<{ db: pg.Pool; why?: string }> {
  let lsn: string;
  try {
    lsn = await primaryWalLsn(primary);
  } catch (err) {
    // the primary down is when an operator looks most: the replica's rows, said to maybe lag
    return {
      db: replica,
      why: `the primary of ${what} cannot be reached (${(err as Error).message}): reading its replica, which may lag`,
    };
  }
  try {
    await waitForReplay(replica, lsn, what, () => primaryWalLsn(primary), waitMs);
    return { db: replica };
  } catch (err) {
    if (err instanceof ReplicaNotFollowingError) return { db: primary, why: err.message };
    return { db: primary, why: `${(err as Error).message}: reading the primary instead` };
  }
}
