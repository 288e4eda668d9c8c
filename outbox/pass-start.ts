/**
 * What a drain pass reads once it holds the shard's lock, in one statement (one round trip: on a
 * busy machine each costs milliseconds of waiting for a core): the shard layout, who holds the
 * lease, the cursor, and a new snapshot with the time up to which it holds every committed change.
 *
 * One statement after the lock's, so it sees a freeze or a re-split that committed before the lock
 * was free (a statement's snapshot is taken before it runs, and a commit is visible before its
 * locks are released); the cursor is written only under that lock.
 */
import type pg from 'pg';
import { CURSOR_COLUMNS, FRESH_CURSOR, SNAPSHOT_AT, toCursor, type ConsumerCursor, type CursorRow } from './cursor';
import { LAYOUT_COLUMNS, layoutOf, type DrainLayout, type LayoutRow } from './shards';

export interface PassStart {
  layout: DrainLayout;
  /** The lease's holder (null when free or expired). */
  holder: string | null;
  cursor: ConsumerCursor;
  /** A snapshot taken now, and the time up to which it holds every committed source change (ms). */
  now: { snap: string; at: number };
}

export async function readPassStart(client: pg.ClientBase, consumer: string, lease: string): Promise<PassStart> {
  const r = await client.query<
    LayoutRow & CursorRow & { has_cursor: boolean; holder: string | null; now_snap: string; now_at: number }
  >(
    `select lay.*, cur.*, cur.batch is not null as has_cursor,
            (select owner from pipeline.leases where name = $2 and expires_at >= clock_timestamp()) as holder,
            pg_current_snapshot()::text as now_snap, ${SNAPSHOT_AT} as now_at
       from (select 1) as one
       left join (select ${LAYOUT_COLUMNS} from pipeline.drain_layout) as lay on true
       left join (select ${CURSOR_COLUMNS} from pipeline.consumer_offsets where consumer = $1) as cur on true`,
    [consumer, lease],
  );
  const row = r.rows[0]!;
  return {
    layout: layoutOf(row),
    holder: row.holder,
    cursor: row.has_cursor ? toCursor(row) : FRESH_CURSOR,
    now: { snap: row.now_snap, at: row.now_at },
  };
}
