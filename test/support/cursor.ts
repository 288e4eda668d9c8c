/**
 * Test helpers around consumer cursors (pipeline.consumer_offsets): how much is applied or left,
 * and saving/restoring a cursor to re-create the crash window "Redis has the batch, the cursor
 * never moved".
 */
import type pg from 'pg';
import { pendingRows } from '../../outbox';

export const DRAIN = 'redis-online-store';

/** Committed outbox rows the consumer has not applied yet. */
export async function backlog(pool: pg.Pool, consumer = DRAIN): Promise<number> {
  return (await pendingRows(pool, consumer, 10_000_000)).rows;
}

/** Outbox rows the consumer has applied (visible in its cursor's snapshot): grows as it works. */
export async function appliedRows(pool: pg.Pool, consumer = DRAIN): Promise<number> {
  const r = await pool.query(
    `select count(*)::int as n from pipeline.outbox o, pipeline.consumer_offsets c
      where c.consumer = $1 and pg_visible_in_snapshot(o.txid, c.snap_from)`,
    [consumer],
  );
  return r.rows[0]?.n ?? 0;
}

export type SavedCursor = Record<string, unknown>;

export async function saveCursorRow(pool: pg.Pool, consumer = DRAIN): Promise<SavedCursor> {
  const r = await pool.query(
    `select batch, snap_from::text as snap_from, snap_from_at, snap_to::text as snap_to, snap_to_at, txid::text as txid, id,
            last_batch, last_txid::text as last_txid, last_id
       from pipeline.consumer_offsets where consumer = $1`,
    [consumer],
  );
  return r.rows[0];
}

export async function restoreCursorRow(pool: pg.Pool, saved: SavedCursor, consumer = DRAIN): Promise<void> {
  await pool.query(
    `update pipeline.consumer_offsets set batch = $2, snap_from = $3::pg_snapshot, snap_from_at = $4, snap_to = $5::pg_snapshot,
            snap_to_at = $6, txid = $7::xid8, id = $8, last_batch = $9, last_txid = $10::xid8, last_id = $11 where consumer = $1`,
    [
      consumer,
      saved.batch,
      saved.snap_from,
      saved.snap_from_at,
      saved.snap_to,
      saved.snap_to_at,
      saved.txid,
      saved.id,
      saved.last_batch,
      saved.last_txid,
      saved.last_id,
    ],
  );
}

/** Back to a consumer that has applied nothing (the whole outbox is delivered again). */
export async function rewindCursor(pool: pg.Pool, consumer = DRAIN): Promise<void> {
  await pool.query(
    `update pipeline.consumer_offsets set snap_from = '1:1:', snap_from_at = null, snap_to = null, snap_to_at = null, txid = '0', id = 0
      where consumer = $1`,
    [consumer],
  );
}
