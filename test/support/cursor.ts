/**
 * Test helpers around consumer cursors (pipeline.consumer_offsets): how much is applied or left,
 * and saving/restoring a cursor to re-create the crash window "Redis has the batch, the cursor
 * never moved".
 */
import type pg from 'pg';
import { drainAppliedSnapshot, drainShards, pendingRows, readDrainLayout } from '../../outbox';

export const DRAIN = 'redis-online-store';

/**
 * Committed outbox rows the consumer has not applied yet. The drain (DRAIN, the default) with
 * several shards: rows not visible in the earliest of their snapshots, i.e. not yet applied by
 * every shard (0 exactly when every shard has applied everything).
 */
export async function backlog(pool: pg.Pool, consumer = DRAIN): Promise<number> {
  if (consumer === DRAIN && (await readDrainLayout(pool)).shards > 1) {
    const r = await pool.query(
      `select count(*)::int as n from pipeline.outbox o where not pg_visible_in_snapshot(o.txid, $1::pg_snapshot)
          and o.txid < pg_snapshot_xmax(pg_current_snapshot()) and pg_visible_in_snapshot(o.txid, pg_current_snapshot())`,
      [(await drainAppliedSnapshot(pool)).snap],
    );
    return r.rows[0].n;
  }
  return (await pendingRows(pool, consumer, 10_000_000)).rows;
}

/** Outbox rows the consumer has applied (visible in its cursor's snapshot): grows as it works. */
export async function appliedRows(pool: pg.Pool, consumer = DRAIN): Promise<number> {
  if (consumer === DRAIN && (await readDrainLayout(pool)).shards > 1) {
    const r = await pool.query(
      `select count(*)::int as n from pipeline.outbox o where pg_visible_in_snapshot(o.txid, $1::pg_snapshot)`,
      [(await drainAppliedSnapshot(pool)).snap],
    );
    return r.rows[0].n;
  }
  const r = await pool.query(
    `select count(*)::int as n from pipeline.outbox o, pipeline.consumer_offsets c
      where c.consumer = $1 and pg_visible_in_snapshot(o.txid, c.snap_from)`,
    [consumer],
  );
  return r.rows[0]?.n ?? 0;
}

export type SavedCursor = Record<string, unknown>;

/** The drain's cursor rows: one, or one per shard (outbox/shards.ts). */
async function drainConsumers(pool: pg.Pool): Promise<string[]> {
  return drainShards((await readDrainLayout(pool)).shards).map((s) => s.consumer);
}

/** A consumer's cursor row; the drain's (the default): every shard's. */
export async function saveCursorRow(pool: pg.Pool, consumer = DRAIN): Promise<SavedCursor> {
  if (consumer === DRAIN && (await readDrainLayout(pool)).shards > 1) {
    const all: SavedCursor = {};
    for (const name of await drainConsumers(pool)) all[name] = await saveOneCursorRow(pool, name);
    return { shards: all };
  }
  return saveOneCursorRow(pool, consumer);
}

async function saveOneCursorRow(pool: pg.Pool, consumer: string): Promise<SavedCursor> {
  const r = await pool.query(
    `select batch, snap_from::text as snap_from, snap_from_at, snap_to::text as snap_to, snap_to_at, txid::text as txid, id,
            last_batch, last_txid::text as last_txid, last_id
       from pipeline.consumer_offsets where consumer = $1`,
    [consumer],
  );
  return r.rows[0];
}

export async function restoreCursorRow(pool: pg.Pool, saved: SavedCursor, consumer = DRAIN): Promise<void> {
  if (saved.shards) {
    for (const [name, row] of Object.entries(saved.shards as Record<string, SavedCursor>))
      await restoreCursorRow(pool, row, name);
    return;
  }
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

/** Back to a consumer that has applied nothing (the whole outbox is delivered again); the drain: every shard. */
export async function rewindCursor(pool: pg.Pool, consumer = DRAIN): Promise<void> {
  const names = consumer === DRAIN ? await drainConsumers(pool) : [consumer];
  await pool.query(
    `update pipeline.consumer_offsets set snap_from = '1:1:', snap_from_at = null, snap_to = null, snap_to_at = null, txid = '0', id = 0
      where consumer = any($1)`,
    [names],
  );
}
