/**
 * Outbox compaction: deletes rows that every consumer has committed (at or below the lowest
 * cursor in pipeline.consumer_offsets) and that are older than the retention. A consumer that is
 * behind keeps its rows however old they are; rows the drain has not read are never touched, so
 * compaction is safe while the drain runs. Bounded: `chunk` rows per short transaction, at most
 * `maxRows` per call, progress in heartbeats.
 */
import type pg from 'pg';
import type { Cursor } from '../drain/outbox-reader';

export interface PruneResult {
  deleted: number;
  /** The lowest consumer cursor: nothing above it was eligible. null when there is no consumer. */
  floor: Cursor | null;
  /** True when the call stopped at maxRows with eligible rows possibly left. */
  more: boolean;
}

export async function lowestCursor(db: pg.Pool | pg.ClientBase): Promise<Cursor | null> {
  const r = await db.query(`select txid::text as txid, id::text as id from pipeline.consumer_offsets order by txid, id limit 1`);
  return r.rows[0] ?? null;
}

export async function pruneOutbox(
  pool: pg.Pool,
  opts: { retentionMs: number; chunk: number; maxRows: number; onProgress?: (deleted: number) => void },
): Promise<PruneResult> {
  const floor = await lowestCursor(pool);
  if (!floor) return { deleted: 0, floor: null, more: false };
  let deleted = 0;
  while (deleted < opts.maxRows) {
    const limit = Math.min(opts.chunk, opts.maxRows - deleted);
    const r = await pool.query(
      `delete from pipeline.outbox o using (
         select txid, id from pipeline.outbox
          where (txid, id) <= ($1::xid8, $2::bigint) and created_at < clock_timestamp() - $3 * interval '1 millisecond'
          order by txid, id limit $4) d
        where o.txid = d.txid and o.id = d.id`,
      [floor.txid, floor.id, opts.retentionMs, limit],
    );
    deleted += r.rowCount ?? 0;
    opts.onProgress?.(deleted);
    if ((r.rowCount ?? 0) < limit) return { deleted, floor, more: false };
  }
  return { deleted, floor, more: true };
}

/** Dead letters that were retried successfully and are older than the retention. */
export async function pruneDeadLetters(pool: pg.Pool, retentionDays: number): Promise<number> {
  const r = await pool.query(
    `delete from pipeline.dead_letters where retried_at is not null and retried_at < now() - $1 * interval '1 day'`,
    [retentionDays],
  );
  return r.rowCount ?? 0;
}

/** The drain's batch log, past the outbox retention (nothing needs it once its rows are gone). */
export async function pruneBatchLog(pool: pg.Pool, retentionMs: number): Promise<number> {
  const r = await pool.query(`delete from pipeline.drain_batches where applied_at < now() - $1 * interval '1 millisecond'`, [retentionMs]);
  return r.rowCount ?? 0;
}
