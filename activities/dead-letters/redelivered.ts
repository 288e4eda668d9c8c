/**
 * Dead letters whose change the drain is about to deliver again: the store lost writes (Redis back
 * from an older file) and the drain rewinds to the store's own position (activities/drain/
 * divergence.ts). The store no longer holds what happened to those changes, so their letters no
 * longer say what is owed:
 *   - the re-delivery applies each change afresh (its load deltas by their stream positions), so a
 *     later retry of its letter would add those deltas a second time;
 *   - or it fails again, and dead-letters it again (outbox/drain-log.ts re-opens the letter with
 *     what is owed now).
 * So the letters of every re-delivered change are settled here, in the rewind's transaction, as
 * discarded by the drain, and what they held released: the re-delivery holds again what fails
 * again. Retried ones too: compaction applies a retried letter again when Redis lost its retry
 * (reapply.ts), which after this re-delivery would count its load deltas a second time. (Reads stay stale until the re-delivery has passed them: the store's watermark came back
 * old with its data.)
 */
import type pg from 'pg';
import type { HeldRow } from '../../store/held';

export const REDELIVERED_REASON =
  'delivered again: the store lost writes and the drain re-delivered this change from its own position (applied then, or dead-lettered again)';

/**
 * Settles the letters of `consumer` (waiting or retried) whose change the rewound cursor delivers again: not
 * seen by the claimed batch's start snapshot, and either after the target snapshot or, inside the
 * batch, after the position the store reached in it (delivery order within a batch: txid, id).
 */
export async function settleRedelivered(
  client: pg.ClientBase,
  consumer: string,
  rewound: { from: string; to: string | null; position: { txid: string; id: string } },
): Promise<HeldRow[]> {
  const r = await client.query<HeldRow>(
    `update pipeline.dead_letters
        set discarded_at = now(), discarded_by = 'drain', discard_reason = $6
      where consumer = $1 and discarded_at is null
        and not pg_visible_in_snapshot(outbox_txid, $2::pg_snapshot)
        and ($3::pg_snapshot is null or not pg_visible_in_snapshot(outbox_txid, $3::pg_snapshot)
             or (outbox_txid, outbox_id) > ($4::xid8, $5::bigint))
      returning tbl, op, key, image, old_image`,
    [consumer, rewound.from, rewound.to, rewound.position.txid, rewound.position.id, REDELIVERED_REASON],
  );
  return r.rows;
}
