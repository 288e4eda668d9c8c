/**
 * What a capture session's history cannot answer for from its first moment
 * (capture/watermark-windows.ts, "suspects"): transactions whose commit record is in the WAL but
 * which are not yet visible. A commit record before the slot's confirmed position is never sent
 * again, yet a chunk read soon after the session began may still not see its change.
 *
 * Normally there are none that last: a commit becomes visible microseconds after its record is
 * flushed. What keeps one invisible for long is synchronous replication: the committing backend
 * waits (wait event SyncRep) for a standby that does not answer, its commit record already flushed
 * and streamed, its change invisible until the standby returns. Those backends and their
 * transaction ids are in pg_stat_activity (pg_xact_status would say "in progress").
 */
import type pg from 'pg';
import { parseSnapshot } from '../db/pg-snapshot';
import { widenXid } from './watermark-windows';

export interface HistoryStart {
  /** The source's snapshot, taken after the stream began and after the waits were read. */
  snapshot: string;
  /** Transactions whose commit waited for a synchronous standby (64-bit xids). */
  waiting: bigint[];
  /**
   * False when the role cannot see other sessions' wait events (it needs pg_read_all_stats,
   * sql/source-setup.sql): such a stall across a session restart then goes unseen.
   */
  waitsVisible: boolean;
}

/**
 * Asks the source, once its stream has begun: the waits first, then the snapshot, so a commit that
 * stops waiting in between is visible in the snapshot (which chunks must cover: watermark-windows.ts).
 * A prepared transaction (two-phase commit) waiting after PREPARE has not committed: it is left out
 * (one that waits after COMMIT PREPARED is not told apart: its backend has no xid of its own).
 * The 32-bit xids are widened to 64 bits by the snapshot's epoch, as the stream's are.
 */
export async function readHistoryStart(source: pg.ClientBase): Promise<HistoryStart> {
  const waits = await source.query<{ waiting: string[]; visible: boolean }>(
    `select array(select a.backend_xid::text from pg_stat_activity a
                   where a.wait_event = 'SyncRep' and a.backend_xid is not null
                     and a.backend_xid not in (select transaction from pg_prepared_xacts)) as waiting,
            (select rolsuper from pg_roles where rolname = current_user)
              or pg_has_role(current_user, 'pg_read_all_stats', 'member') as visible`,
  );
  const snap = await source.query<{ snapshot: string }>(`select pg_current_snapshot()::text as snapshot`);
  const snapshot = snap.rows[0]!.snapshot;
  const { xmax } = parseSnapshot(snapshot);
  const { waiting, visible } = waits.rows[0]!;
  return { snapshot, waiting: waiting.map((x) => widenXid(Number(x), xmax)), waitsVisible: visible };
}
