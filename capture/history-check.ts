/**
 * Is the source's change history still the one the pipeline captured?
 *
 * A session resumes from the slot's confirmed position and skips every transaction ending at or
 * below the position the pipeline database recorded (they were written before a crash between the
 * outbox commit and the slot's confirmation). That is right only while the source's history up to
 * the recorded position is the one captured. A source restored from a backup or a disk snapshot
 * (its slot with it), or failed over to a standby behind it that carries its slot, has another
 * history past some point: the store holds changes the source no longer has, and the source's new
 * transactions there would be skipped as already written. Reads would then answer fresh, wrongly.
 *
 * Two things tell it, and either marks the source lost (the store is emptied and refilled):
 *  - when the session opens, the source's WAL ends before the recorded position (it went back);
 *  - while the stream re-sends what was recorded (the slot confirmed behind it), the last
 *    transaction written before (migration 016: its end, xid and commit time) must come again,
 *    exactly, before anything past it, and no transaction may end between it and the recorded
 *    position. Decoding the same WAL again sends the same transactions at the same positions.
 */
import type pg from 'pg';
import { formatLsn, parseLsn } from './pgoutput';

export interface LastCapturedTransaction {
  endLsn: bigint;
  xid: number;
  commitMs: number;
}

/** The source's history is not the one captured: the session stops and the source is marked lost. */
export class HistoryDivergedError extends Error {
  /** `superseded`: found by a session a newer one replaced, which marks nothing (the newer one decides). */
  constructor(source: string, why: string, superseded = false) {
    super(
      `capture of ${source}: the source's change history is not the one captured (${why}): restored from a backup or a disk snapshot, or failed over to a standby behind it? ${
        superseded
          ? 'This capture session was replaced by a newer one, which holds the source: it marked nothing and stops; the newer session finds the same and has the store refilled'
          : 'The store is emptied and refilled from the sources'
      } (docs/capture.md)`,
    );
    this.name = 'HistoryDivergedError';
  }
}

/**
 * Where the source's WAL ends now; null on a standby (decoding there, PostgreSQL 16 and later): its
 * replay position starts behind what it had replayed after a restart, which is no restore.
 */
export async function sourceWalEnd(admin: pg.ClientBase): Promise<bigint | null> {
  const r = await admin.query<{ lsn: string | null }>(
    `select case when pg_is_in_recovery() then null else pg_current_wal_lsn()::text end as lsn`,
  );
  const lsn = r.rows[0]!.lsn;
  return lsn === null ? null : parseLsn(lsn);
}

/** Why the source's WAL ending before the recorded position is a different history, or null. */
export function walWentBack(walEnd: bigint | null, recorded: bigint): string | null {
  return walEnd !== null && walEnd < recorded
    ? `its WAL ends at ${formatLsn(walEnd)}, before the ${formatLsn(recorded)} the pipeline recorded`
    : null;
}

/**
 * Checks what the stream re-sends below the recorded position. Made only when the slot is
 * confirmed behind the recorded position and the last transaction written is known; done once the
 * stream is past the recorded position.
 */
export class ResendCheck {
  /** The last captured transaction has yet to come again (it ends past the slot's position). */
  private awaitingLast: boolean;
  private done = false;

  constructor(
    private readonly recorded: bigint,
    private readonly last: LastCapturedTransaction,
    slotConfirmed: bigint,
  ) {
    this.awaitingLast = last.endLsn > slotConfirmed;
  }

  /**
   * Whether the slot may be confirmed up to `lsn` (an idle position) now. Not at or past the last
   * captured transaction while it has yet to come again: that the stream got there without it is
   * what tells another history, and a slot confirmed there would hide it from the next session.
   */
  mayConfirm(lsn: bigint): boolean {
    return this.done || !this.awaitingLast || lsn < this.last.endLsn;
  }

  /** A transaction the stream sent: why it shows another history, or null. */
  transaction(t: LastCapturedTransaction): string | null {
    if (this.done) return null;
    const { last } = this;
    if (t.endLsn > this.recorded) {
      this.done = true;
      return this.awaitingLast
        ? `the last transaction captured (xid ${last.xid}, ending at ${formatLsn(last.endLsn)}) was not sent again before xid ${t.xid}, ending at ${formatLsn(t.endLsn)}`
        : null;
    }
    if (t.endLsn < last.endLsn) return null;
    if (t.endLsn === last.endLsn) {
      if (t.xid === last.xid && Math.abs(t.commitMs - last.commitMs) < 0.001) {
        this.awaitingLast = false;
        return null;
      }
      return `xid ${t.xid} committed at ${new Date(t.commitMs).toISOString()} ends at ${formatLsn(t.endLsn)}, where the captured xid ${last.xid} committed at ${new Date(last.commitMs).toISOString()} ended`;
    }
    return `xid ${t.xid} ends at ${formatLsn(t.endLsn)}, between the last transaction captured (${formatLsn(last.endLsn)}) and the recorded position (${formatLsn(this.recorded)}), where none was`;
  }

  /**
   * A keepalive: the server has sent everything before `sentLsn`. Past the recorded position
   * without the last captured transaction sent again, the history differs (an idle source too).
   */
  keepalive(sentLsn: bigint): string | null {
    if (this.done || sentLsn <= this.recorded) return null;
    this.done = true;
    return this.awaitingLast
      ? `the server sent up to ${formatLsn(sentLsn)}, past the recorded ${formatLsn(this.recorded)}, without the last transaction captured (xid ${this.last.xid}, ending at ${formatLsn(this.last.endLsn)})`
      : null;
  }
}
