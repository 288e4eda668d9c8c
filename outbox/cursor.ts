/**
 * A consumer's cursor over the outbox (pipeline.consumer_offsets): the last snapshot whose every
 * visible row it has applied, and inside a batch delivered in chunks the (txid, id) reached.
 * How the rows between two snapshots are read: outbox/delta.ts.
 */
import { capturedThroughSql } from './capture-progress';
import type pg from 'pg';
import { DeliveryPosition, NO_POSITION } from '../store/store-position';

/** A place in the outbox order (txid, id). */
export interface Position {
  txid: string;
  id: string;
}

/** A consumer's cursor (pipeline.consumer_offsets). */
export interface ConsumerCursor {
  /** Number of the batch in progress (or the next): load deltas are ordered by (batch, txid, id). */
  batch: string;
  /** pg_snapshot text: every outbox row visible in it is applied. */
  from: string;
  /** When `from` was taken (ms since epoch, the database's clock): the store's asOf. */
  fromAt: number | null;
  /** Target snapshot of a batch delivered in chunks; null between batches. */
  to: string | null;
  toAt: number | null;
  /** Inside the batch in progress, the last row delivered; 0:0 at a batch's start. */
  position: Position;
  /** The delivery position of the last row ever delivered (compared with the store's own). */
  last: DeliveryPosition;
}

export const BATCH_START: Position = { txid: '0', id: '0' };

export const FRESH_CURSOR: ConsumerCursor = {
  batch: '1',
  from: '1:1:',
  fromAt: null,
  to: null,
  toAt: null,
  position: BATCH_START,
  last: NO_POSITION,
};

/** The columns of pipeline.consumer_offsets a cursor is read from (toCursor). */
export const CURSOR_COLUMNS = `batch::text as batch, snap_from::text as "from",
  (extract(epoch from snap_from_at) * 1000)::float8 as "fromAt", snap_to::text as "to",
  (extract(epoch from snap_to_at) * 1000)::float8 as "toAt", txid::text as txid, id::text as id,
  last_batch::text as last_batch, last_txid::text as last_txid, last_id::text as last_id`;

export interface CursorRow {
  batch: string;
  from: string;
  fromAt: number | null;
  to: string | null;
  toAt: number | null;
  txid: string;
  id: string;
  last_batch: string;
  last_txid: string;
  last_id: string;
}

export const toCursor = (r: CursorRow): ConsumerCursor => ({
  batch: r.batch,
  from: r.from,
  fromAt: r.fromAt,
  to: r.to,
  toAt: r.toAt,
  position: { txid: r.txid, id: r.id },
  last: { batch: r.last_batch, txid: r.last_txid, id: r.last_id },
});

export async function ensureConsumer(db: pg.Pool | pg.ClientBase, consumer: string): Promise<void> {
  await db.query('insert into pipeline.consumer_offsets (consumer) values ($1) on conflict do nothing', [consumer]);
}

export async function readCursor(db: pg.Pool | pg.ClientBase, consumer: string): Promise<ConsumerCursor> {
  const r = await db.query<CursorRow>(`select ${CURSOR_COLUMNS} from pipeline.consumer_offsets where consumer = $1`, [
    consumer,
  ]);
  return r.rowCount ? toCursor(r.rows[0]) : FRESH_CURSOR;
}

/**
 * SQL: the time up to which a snapshot taken in the same statement holds every committed source
 * change: statement_timestamp (a commit acknowledged before it is visible in the snapshot), or
 * earlier when a source is captured from the WAL and its capture is behind: the coverage time its
 * capture recorded in the outbox transactions this snapshot sees (capturedThroughSql,
 * docs/capture.md). That time becomes the store's `asOf` (read with the cursor: outbox/pass-start.ts).
 */
export const snapshotAtSql = (logical: boolean): string =>
  `(extract(epoch from least(statement_timestamp(), ${capturedThroughSql(logical)})) * 1000)::float8`;

/**
 * The cursor after delivering `rows` (in (txid, id) order) of the batch towards `target`, of at
 * most `limit` asked for. Fewer than asked: the batch is complete, the target becomes the cursor's
 * snapshot and the next batch gets its own number (even after an empty one: a number names one
 * claimed target). Otherwise the batch goes on from the last row.
 */
export function advanceCursor(
  cursor: ConsumerCursor,
  target: { snap: string; at: number | null },
  rows: Position[],
  limit: number,
): { next: ConsumerCursor; complete: boolean } {
  const complete = rows.length < limit;
  const lastRow = rows[rows.length - 1];
  const last = lastRow ? { batch: cursor.batch, txid: lastRow.txid, id: lastRow.id } : cursor.last;
  const next: ConsumerCursor = complete
    ? {
        batch: String(BigInt(cursor.batch) + 1n),
        from: target.snap,
        fromAt: target.at,
        to: null,
        toAt: null,
        position: BATCH_START,
        last,
      }
    : { ...cursor, to: target.snap, toAt: target.at, position: { txid: lastRow.txid, id: lastRow.id }, last };
  return { next, complete };
}

/** SQL that saves a cursor, with the parameters of saveCursorParams ($1 to $11). */
export const SAVE_CURSOR_SQL = `update pipeline.consumer_offsets
        set batch = $2, snap_from = $3::pg_snapshot, snap_from_at = to_timestamp($4::float8 / 1000),
            snap_to = $5::pg_snapshot, snap_to_at = to_timestamp($6::float8 / 1000),
            txid = $7::xid8, id = $8, last_batch = $9, last_txid = $10::xid8, last_id = $11, updated_at = now()
      where consumer = $1`;

export const saveCursorParams = (consumer: string, c: ConsumerCursor): unknown[] => [
  consumer,
  c.batch,
  c.from,
  c.fromAt,
  c.to,
  c.toAt,
  c.position.txid,
  c.position.id,
  c.last.batch,
  c.last.txid,
  c.last.id,
];

export async function saveCursor(db: pg.ClientBase | pg.Pool, consumer: string, c: ConsumerCursor): Promise<void> {
  await db.query(SAVE_CURSOR_SQL, saveCursorParams(consumer, c));
}

/**
 * saveCursor, only if the cursor is still `read` (its batch and position): a consumer that works
 * without a lock (the landing) never moves its cursor back over a call that saved in between.
 * Returns whether it saved.
 */
export async function saveCursorIfUnchanged(
  db: pg.ClientBase | pg.Pool,
  consumer: string,
  read: ConsumerCursor,
  c: ConsumerCursor,
): Promise<boolean> {
  const r = await db.query(
    `${SAVE_CURSOR_SQL} and batch = $12 and txid = $13::xid8 and id = $14 and snap_from::text = $15`,
    [...saveCursorParams(consumer, c), read.batch, read.position.txid, read.position.id, read.from],
  );
  return r.rowCount === 1;
}
