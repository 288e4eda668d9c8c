/**
 * Reads the outbox by snapshot deltas: what became visible between two snapshots.
 *
 * Why this never skips a change and never waits for an open transaction. A consumer's cursor is
 * the last snapshot S(k-1) whose every visible outbox row it has applied. The next batch takes a
 * new snapshot S(k) and reads the rows visible in S(k) but not in S(k-1): rows of transactions
 * that were still in progress in S(k-1) (its xip list) or had not started (txid >= its xmax). A
 * transaction that is still open in S(k) is simply not visible yet; it holds back nothing else and
 * is picked up by the first batch whose snapshot sees its commit, whatever order transactions
 * commit in. An aborted transaction is never visible. Outbox rows are never updated, so a batch
 * re-read after a crash (same S(k-1), same S(k)) yields exactly the same rows.
 *
 * A big batch (a backlog) is delivered in chunks of at most `limit` rows, in (txid, id) order:
 * the cursor then keeps S(k) as the batch's target and the (txid, id) position reached.
 *
 * Cost: both parts of the delta are index lookups on the outbox key (txid, id): one probe per
 * transaction that finished since S(k-1) and one range scan from S(k-1)'s xmax to S(k)'s. Rows
 * written by transactions still open are not read at all, however long they stay open.
 */
import type pg from 'pg';
import type { OutboxRow } from '../../features/from-source';
import { parseSnapshot } from '../../db/pg-snapshot';
import { DeliveryPosition, NO_POSITION } from '../../store/store-position';

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

export const FRESH_CURSOR: ConsumerCursor = { batch: '1', from: '1:1:', fromAt: null, to: null, toAt: null, position: BATCH_START, last: NO_POSITION };

const CURSOR_COLUMNS = `batch::text as batch, snap_from::text as "from",
  (extract(epoch from snap_from_at) * 1000)::float8 as "fromAt", snap_to::text as "to",
  (extract(epoch from snap_to_at) * 1000)::float8 as "toAt", txid::text as txid, id::text as id,
  last_batch::text as last_batch, last_txid::text as last_txid, last_id::text as last_id`;

interface CursorRow {
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

const toCursor = (r: CursorRow): ConsumerCursor => ({
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
  const r = await db.query<CursorRow>(`select ${CURSOR_COLUMNS} from pipeline.consumer_offsets where consumer = $1`, [consumer]);
  return r.rowCount ? toCursor(r.rows[0]) : FRESH_CURSOR;
}

/**
 * The cursor and, from the same statement, a new snapshot and the time just before it was taken
 * (statement_timestamp: a commit acknowledged before that time is visible in the snapshot).
 */
export async function readCursorAndSnapshot(
  db: pg.ClientBase,
  consumer: string,
): Promise<{ cursor: ConsumerCursor; now: { snap: string; at: number } }> {
  const r = await db.query<CursorRow & { now_snap: string; now_at: number }>(
    `select ${CURSOR_COLUMNS}, pg_current_snapshot()::text as now_snap,
            (extract(epoch from statement_timestamp()) * 1000)::float8 as now_at
       from pipeline.consumer_offsets where consumer = $1`,
    [consumer],
  );
  if (!r.rowCount) {
    const s = await db.query(`select pg_current_snapshot()::text as snap, (extract(epoch from statement_timestamp()) * 1000)::float8 as at`);
    return { cursor: FRESH_CURSOR, now: { snap: s.rows[0].snap, at: s.rows[0].at } };
  }
  return { cursor: toCursor(r.rows[0]), now: { snap: r.rows[0].now_snap, at: r.rows[0].now_at } };
}

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
    ? { batch: String(BigInt(cursor.batch) + 1n), from: target.snap, fromAt: target.at, to: null, toAt: null, position: BATCH_START, last }
    : { ...cursor, to: target.snap, toAt: target.at, position: { txid: lastRow.txid, id: lastRow.id }, last };
  return { next, complete };
}

export async function saveCursor(db: pg.ClientBase | pg.Pool, consumer: string, c: ConsumerCursor): Promise<void> {
  await db.query(
    `update pipeline.consumer_offsets
        set batch = $2, snap_from = $3::pg_snapshot, snap_from_at = to_timestamp($4::float8 / 1000),
            snap_to = $5::pg_snapshot, snap_to_at = to_timestamp($6::float8 / 1000),
            txid = $7::xid8, id = $8, last_batch = $9, last_txid = $10::xid8, last_id = $11, updated_at = now()
      where consumer = $1`,
    [consumer, c.batch, c.from, c.fromAt, c.to, c.toAt, c.position.txid, c.position.id, c.last.batch, c.last.txid, c.last.id],
  );
}

/**
 * Rows visible in `to` and not in `from`, after `after` in (txid, id) order, at most `limit`.
 * Part one probes the transactions in `from`'s in-progress list that `to` sees finished; part two
 * scans the txid range [xmax(from), xmax(to)). Every part-one txid is below every part-two txid.
 */
export async function readDelta(
  db: pg.ClientBase | pg.Pool,
  input: { from: string; to: string; after: Position; limit: number },
): Promise<OutboxRow[]> {
  const r = await db.query<OutboxRow>(DELTA_SQL, deltaParams(input));
  return r.rows;
}

/**
 * Parameters of DELTA_SQL: from, to, after.txid, after.id, limit, and where the range scan of part
 * two starts: after the position, but never below from's xmax. (One lower bound, as a row
 * comparison: given both a txid bound and a row comparison, the btree scan may start at the
 * lower of them, and a position at the start of a batch would make it walk the whole outbox.)
 */
export function deltaParams(input: { from: string; to: string; after: Position; limit: number }): (string | number)[] {
  const xmax = parseSnapshot(input.from).xmax;
  const afterTxid = BigInt(input.after.txid);
  const [startTxid, startId] = afterTxid >= xmax ? [input.after.txid, input.after.id] : [String(xmax), '-1'];
  return [input.from, input.to, input.after.txid, input.after.id, input.limit, startTxid, startId];
}

/** The delta query; parameters from deltaParams. */
export const DELTA_SQL = `
  with finished as (
    select x as t from pg_snapshot_xip($1::pg_snapshot) x
     where pg_visible_in_snapshot(x, $2::pg_snapshot) and x >= $3::xid8
  )
  select d.id::text as id, d.txid::text as txid, d.tbl, d.op, d.key, d.image, d.old_image,
         (extract(epoch from d.created_at) * 1000)::float8 as created_ms
    from (
      (select o.*
         from finished cross join lateral (
           select * from pipeline.outbox o
            where o.txid = finished.t and (o.txid, o.id) > ($3::xid8, $4::bigint)
            order by o.id limit $5) o
        order by o.txid, o.id limit $5)
      union all
      (select o.*
         from pipeline.outbox o
        where (o.txid, o.id) > ($6::xid8, $7::bigint) and o.txid < pg_snapshot_xmax($2::pg_snapshot)
          and pg_visible_in_snapshot(o.txid, $2::pg_snapshot)
        order by o.txid, o.id limit $5)
    ) d
   order by d.txid, d.id
   limit $5`;

/**
 * How many outbox rows are not yet applied by a consumer (visible now, not in its `from`), capped,
 * and the age of the oldest. For status and metrics.
 */
export async function pendingRows(db: pg.Pool | pg.ClientBase, consumer: string, cap: number): Promise<{ rows: number; oldestAgeMs: number | null }> {
  // Two index scans, as the delta reads them (an OR of both conditions would scan the table), with
  // the snapshot's bounds as parameters, so the planner sees how few rows lie past them.
  const from = parseSnapshot((await readCursor(db, consumer)).from);
  const r = await db.query(
    `with pending as (
       (select o.created_at from pipeline.outbox o where o.txid = any($1::xid8[]) limit $3)
       union all
       (select o.created_at from pipeline.outbox o where o.txid >= $2::xid8 limit $3))
     select least(count(*), $3)::int as n, (extract(epoch from clock_timestamp() - min(created_at)) * 1000)::float8 as age from pending`,
    [from.xip.map(String), String(from.xmax), cap],
  );
  const row = r.rows[0];
  return { rows: row?.n ?? 0, oldestAgeMs: row?.age === null || row?.age === undefined ? null : Math.round(row.age) };
}

export interface OpenTransactions {
  /** Transactions holding a transaction id anywhere in the cluster (they hold back vacuum). */
  count: number;
  oldest: { pid: number; application: string; state: string; ageMs: number } | null;
}

/**
 * Open write transactions, for information: they no longer delay freshness, but they still hold
 * back vacuum and outbox compaction (rows at or above the oldest one's txid are kept). Never
 * reports other sessions' SQL text: pid, application name, state and age say enough.
 */
export async function openTransactions(db: pg.Pool | pg.ClientBase): Promise<OpenTransactions> {
  const r = await db.query(
    `select count(*) over () as n, pid, coalesce(application_name, '') as app, coalesce(state, '') as state,
            (extract(epoch from clock_timestamp() - xact_start) * 1000)::float8 as age_ms
       from pg_stat_activity
      where backend_xid is not null and pid <> pg_backend_pid()
      order by age(backend_xid) desc limit 1`,
  );
  if (!r.rowCount) return { count: 0, oldest: null };
  const row = r.rows[0];
  return { count: Number(row.n), oldest: { pid: row.pid, application: row.app, state: row.state, ageMs: Math.round(Number(row.age_ms)) } };
}
