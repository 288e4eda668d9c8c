/**
 * Holds on the outbox: how a reader that has no cursor (a replay, activities/replay) keeps
 * compaction from deleting rows it has yet to read. Compaction deletes rows below the lowest
 * cursor's xmin (activities/compaction/prune-outbox.ts); a hold lowers that floor to its txid
 * while it is in force. A hold is renewed as its reader moves on and lapses `ttlMs` after the last
 * renewal, so a reader that is gone holds nothing back for long.
 *
 * A lapsed hold is noticed, never papered over: compaction records how far it has ever cut
 * (pipeline.outbox_floor.below) before deleting, and a renewal reads it under the floor row's lock
 * (which compaction takes FOR UPDATE while it decides its cut). Cut past the reader's next row
 * means rows it needed may be gone: the renewal throws OutboxReleasedError instead.
 */
import type pg from 'pg';
import { withTransaction } from '../db/transaction';

/** How long a hold stays in force after its last renewal. */
export const OUTBOX_HOLD_TTL_MS = 60 * 60_000;

/**
 * How long a lapsed hold's row is kept (it holds nothing back): a holder coming back within it is
 * told whether compaction passed it. Without its row a holder is taken as beginning again
 * (renewHold), as is one whose replay began on a worker from before holds.
 */
export const LAPSED_HOLD_KEPT_MS = 30 * 86_400_000;

/** The rows a holder still needs were (or may have been) deleted by compaction. */
export class OutboxReleasedError extends Error {
  override name = 'OutboxReleasedError';
  constructor(
    readonly holder: string,
    readonly neededTxid: string,
    readonly below: string,
  ) {
    super(
      `compaction deleted outbox rows below txid ${below}, past txid ${neededTxid} where ${holder} goes on reading (its hold had lapsed)`,
    );
  }
}

/**
 * Where compaction's cut stands: rows with a txid below it may have been deleted, now or by a run
 * that is still deleting. Read under the floor row's lock, so a hold written in the same
 * transaction is seen by every later run.
 */
async function lockedFloor(client: pg.ClientBase): Promise<bigint> {
  const r = await client.query<{ below: string }>(`select below::text from pipeline.outbox_floor for share`);
  return BigInt(r.rows[0]?.below ?? '0');
}

/**
 * Starts a hold at `txid` (or later, where compaction has already cut): returns the first txid
 * that is sure to be kept. Rows below it were released before the hold began (compaction may be
 * deleting them right now), so the holder starts there.
 */
export function beginHold(pool: pg.Pool, holder: string, txid: string, ttlMs = OUTBOX_HOLD_TTL_MS): Promise<string> {
  return holdFrom(pool, holder, txid, ttlMs, 'begin');
}

/**
 * Renews a hold at `txid` (the holder's next row), or throws OutboxReleasedError when compaction
 * has cut past it while the hold had lapsed (its holder stopped for longer than the hold). A
 * holder with no hold row begins one as beginHold does and gets the first txid sure to be kept:
 * its replay began on a worker from before holds (a rolling deploy), or it finished and released
 * its hold and this is a retry of its last step.
 */
export function renewHold(pool: pg.Pool, holder: string, txid: string, ttlMs = OUTBOX_HOLD_TTL_MS): Promise<string> {
  return holdFrom(pool, holder, txid, ttlMs, 'renew');
}

async function holdFrom(
  pool: pg.Pool,
  holder: string,
  txid: string,
  ttlMs: number,
  kind: 'begin' | 'renew',
): Promise<string> {
  return withTransaction(pool, async (client) => {
    const below = await lockedFloor(client);
    let kept = txid;
    if (BigInt(txid) < below) {
      if (kind === 'renew') {
        const held = await client.query(`select 1 from pipeline.outbox_holds where holder = $1`, [holder]);
        if (held.rowCount) throw new OutboxReleasedError(holder, txid, below.toString());
      }
      kept = below.toString();
    }
    await upsertHold(client, holder, kept, ttlMs);
    return kept;
  });
}

export async function releaseHold(db: pg.Pool | pg.ClientBase, holder: string): Promise<void> {
  await db.query(`delete from pipeline.outbox_holds where holder = $1`, [holder]);
}

async function upsertHold(client: pg.ClientBase, holder: string, txid: string, ttlMs: number): Promise<void> {
  await client.query(
    `insert into pipeline.outbox_holds (holder, txid, expires_at)
     values ($1, $2::xid8, clock_timestamp() + $3 * interval '1 millisecond')
     on conflict (holder) do update set txid = excluded.txid, expires_at = excluded.expires_at`,
    [holder, txid, ttlMs],
  );
}

/** The holds in force, lowest first (`ops status`). */
export async function holdsInForce(
  db: pg.Pool | pg.ClientBase,
): Promise<{ holder: string; txid: string; expiresAt: Date }[]> {
  const r = await db.query<{ holder: string; txid: string; expires_at: Date }>(
    `select holder, txid::text, expires_at from pipeline.outbox_holds
      where expires_at > clock_timestamp() order by txid, holder`,
  );
  return r.rows.map((h) => ({ holder: h.holder, txid: h.txid, expiresAt: h.expires_at }));
}
