/**
 * The source layout the pipeline database records (one row of pipeline.capture_progress per
 * source) against the configuration's: what happens when the sources change, say the orders
 * table moves to a database of its own (`shop` becomes `inventory` and `orders`).
 *
 * A source that joins a pipeline which captured another layout before has a new slot, and the
 * changes made before that slot existed were never sent by it: those of the moved tables between
 * the old capture's end and the new slot's start are in no outbox. The store was complete and
 * would answer fresh without them. So a joining source is marked lost (markSourceLostIn: reads
 * stale, the store emptied and refilled from the sources), before its slot is created, exactly as
 * a source whose slot was lost. On a first start (no change ever seen: pipelineUsedBefore) nothing
 * is marked: the store is not complete yet, and the first backfill fills it.
 *
 * Every configured source is recorded at once, by whichever capture opens first: a source whose
 * capture has not started yet then holds reads stale (capturedThroughSql) instead of being
 * ignored until it registers. Only here: a capture that finds its row gone after this (another
 * layout's capture removed it) fails to claim the source and joins again when it is retried, so a
 * row is never re-created unmarked.
 *
 * A recorded source the configuration no longer names is forgotten: it will never capture again,
 * and its row would hold reads stale for good. Its slot stays on its database, keeping WAL, until
 * someone drops it (the warning says how).
 */
import type pg from 'pg';
import type { CaptureSourceRef } from '../capture/sources';
import { withTransaction } from '../db/transaction';
import { markSourceLostIn } from './capture-progress';

export interface LayoutChange {
  /** Sources recorded now for the first time. */
  joined: string[];
  /** Of those, the ones marked lost (another layout was captured before). */
  markedLost: string[];
  /** Sources forgotten (no longer configured), with the slots they leave behind. */
  retired: { source: string; slot: string }[];
}

/** Serializes layout changes of every capture of one pipeline database (an advisory lock's key). */
const LAYOUT_LOCK = 'fresh-badges:capture-layout';

/**
 * Records the configured layout in one transaction (see above); a no-op when the pipeline
 * database records exactly these sources already.
 */
export async function joinCaptureLayout(pipeline: pg.Pool, layout: readonly CaptureSourceRef[]): Promise<LayoutChange> {
  const change: LayoutChange = { joined: [], markedLost: [], retired: [] };
  const recorded = async (db: pg.Pool | pg.ClientBase) =>
    (
      await db.query<{ source: string; slot: string }>(
        `select source, slot from pipeline.capture_progress order by source`,
      )
    ).rows;
  const differs = (rows: { source: string; slot: string }[]) =>
    layout.some((s) => !rows.some((r) => r.source === s.name && r.slot === s.slot)) ||
    rows.some((r) => !layout.some((s) => s.name === r.source));
  // the common case (nothing changed) without a lock
  if (!differs(await recorded(pipeline))) return change;
  return withTransaction(pipeline, async (c) => {
    await c.query(`select pg_advisory_xact_lock(hashtext($1))`, [LAYOUT_LOCK]);
    const rows = await recorded(c);
    const capturedBefore = await pipelineUsedBefore(c);
    for (const source of layout) {
      const row = rows.find((r) => r.source === source.name);
      if (row) {
        if (row.slot !== source.slot)
          await c.query(`update pipeline.capture_progress set slot = $2 where source = $1`, [source.name, source.slot]);
        continue;
      }
      await c.query(`insert into pipeline.capture_progress (source, slot) values ($1, $2)`, [source.name, source.slot]);
      change.joined.push(source.name);
      if (!capturedBefore) continue;
      await markSourceLostIn(c, source.name, source.tables);
      change.markedLost.push(source.name);
    }
    for (const r of rows) {
      if (layout.some((s) => s.name === r.source)) continue;
      await c.query(`delete from pipeline.capture_progress where source = $1`, [r.source]);
      change.retired.push({ source: r.source, slot: r.slot });
    }
    return change;
  });
}

/**
 * Whether the store may hold data already, so a source joining now may lack changes it needs: a
 * source captured (or lost) before, or any change in the outbox or ever delivered to the store
 * (the trigger capture records no source, but its changes pass through the outbox: moving from it
 * straight to sources of their own is a layout change too). Only a pipeline that has seen no change
 * at all starts without marking anything.
 */
async function pipelineUsedBefore(c: pg.ClientBase): Promise<boolean> {
  const r = await c.query<{ used: boolean }>(
    `select exists (select 1 from pipeline.capture_progress
                     where lsn > '0/0' or covered_at is not null or lost_at is not null)
         or exists (select 1 from pipeline.outbox)
         or exists (select 1 from pipeline.consumer_offsets where last_id > 0) as used`,
  );
  return r.rows[0]!.used;
}
