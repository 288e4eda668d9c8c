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
import { widenXid } from './watermark-windows';

export interface HistoryStart {
  /** The source's snapshot, taken after the stream began. */
  snapshot: string;
  /** Transactions that snapshot did not see whose commit waits for a synchronous standby (64-bit xids). */
  committedUnseen: bigint[];
  /**
   * False when the role cannot see other sessions' wait events (it needs pg_read_all_stats,
   * sql/source-setup.sql): such a stall across a session restart then goes unseen.
   */
  waitsVisible: boolean;
}

/**
 * Asks the source, once its stream has begun: one statement, so the waits are read with the
 * snapshot they are compared to. A backend waiting for its standby has flushed its commit record;
 * the xid is widened to 64 bits by the snapshot's epoch (pg_snapshot_xmax), as the stream's are.

 */
export async function readHistoryStart(source: pg.ClientBase): Promise<HistoryStart> {
  const r = await source.query<{ snapshot: string; waiting: string[]; visible: boolean }>(
    `with s as materialized (select pg_current_snapshot() as snap)
     select s.snap::text as snapshot,
            array(select a.backend_xid::text from pg_stat_activity a
                   where a.wait_event = 'SyncRep' and a.backend_xid is not null) as waiting,
            (select rolsuper from pg_roles where rolname = current_user)
              or pg_has_role(current_user, 'pg_read_all_stats', 'member') as visible
       from s`,
  );
  const row = r.rows[0]!;
  const xmax = BigInt(row.snapshot.split(':')[1]!);
  const committedUnseen = row.waiting.map((x) => widenXid(Number(x), xmax));
  return { snapshot: row.snapshot, committedUnseen, waitsVisible: row.visible };
}
