/**
 * What a drain pass reads once it holds the shard's lock, in one statement: the shard layout, who
 * holds the lease, the cursor, and a new snapshot with the time up to which it holds every
 * committed change. It goes with the BEGIN and the lock in one round trip (activities/drain/
 * claim.ts): on a busy machine each round trip costs milliseconds of waiting for a core.
 *
 * A statement after the lock's, so it sees a freeze or a re-split that committed before the lock
 * was free (a statement's snapshot is taken before it runs, and a commit is visible before its
 * locks are released); the cursor is written only under that lock.
 */
import pg from 'pg';
import { CURSOR_COLUMNS, FRESH_CURSOR, snapshotAtSql, toCursor, type ConsumerCursor, type CursorRow } from './cursor';
import { LEASE_HOLDER_SQL, LEASE_LEFT_MS_SQL } from './lease';
import { LAYOUT_COLUMNS, layoutOf, type DrainLayout, type LayoutRow } from './shards';

const { escapeLiteral } = pg;

export interface PassStart {
  layout: DrainLayout;
  /** The lease's holder (null when free or expired). */
  holder: string | null;
  /** How long the lease has left (ms; null when free or expired). */
  leaseLeftMs: number | null;
  cursor: ConsumerCursor;
  /**
   * A snapshot taken now, the time up to which it holds every committed source change (ms), and
   * the database's clock as it was taken (ms; what a caught-up time's age is measured from).
   */
  now: { snap: string; at: number; dbNowMs: number };
}

/**
 * SQL, no parameters (it goes in one simple query with the BEGIN and the lock before it: each
 * statement of a simple query takes its own snapshot): the pass start of `consumer`, its lease named
 * `lease`; `logical`: CAPTURE_MODE=logical (capturedThroughSql).
 */
export const passStartSql = (consumer: string, lease: string, logical: boolean) =>
  `select lay.*, cur.*, cur.batch is not null as has_cursor,
            (${LEASE_HOLDER_SQL(escapeLiteral(lease))}) as holder,
            (${LEASE_LEFT_MS_SQL(escapeLiteral(lease))}) as lease_left_ms,
            pg_current_snapshot()::text as now_snap, ${snapshotAtSql(logical)} as now_at,
            (extract(epoch from statement_timestamp()) * 1000)::float8 as db_now
       from (select 1) as one
       left join (select ${LAYOUT_COLUMNS} from pipeline.drain_layout) as lay on true
       left join (select ${CURSOR_COLUMNS} from pipeline.consumer_offsets where consumer = ${escapeLiteral(consumer)}) as cur on true`;

type PassStartRow = LayoutRow &
  CursorRow & {
    has_cursor: boolean;
    holder: string | null;
    lease_left_ms: number | null;
    now_snap: string;
    now_at: number;
    db_now: number;
  };

/** The pass start in the result of passStartSql. */
export function passStartOf(result: pg.QueryResult): PassStart {
  const row = result.rows[0] as PassStartRow;
  return {
    layout: layoutOf(row),
    holder: row.holder,
    leaseLeftMs: row.lease_left_ms,
    cursor: row.has_cursor ? toCursor(row) : FRESH_CURSOR,
    now: { snap: row.now_snap, at: row.now_at, dbNowMs: row.db_now },
  };
}
