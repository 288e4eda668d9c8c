/**
 * Replay: re-applies outbox changes from a position up to what the drain has applied, with the
 * store's replay mode (a value of the same version is written again), so state features computed
 * by faulty logic are corrected by re-running the fixed logic over the retained changes. Safe
 * beside the running drain: every write is still version-checked, and it never moves the cursor.
 * FC load deltas are skipped: a sum cannot be replayed piecewise; a backfill recomputes loads.
 */
import type { StoreRedis } from '../../store/redis-client';
import type pg from 'pg';
import { featureUpdatesFrom, OutboxRow } from '../../features/from-source';
import { FeatureUpdate, LOAD_FEATURES } from '../../features/definitions';
import { applyUpdates, ApplyOptions } from '../../store/apply';
import { StoreKeys } from '../../store/keys';
import { beginHold, drainAppliedSnapshot, Position, releaseHold, renewHold } from '../../outbox';
import { MAX_ID } from './replay-start';
import { isReemitTable, SourceRowRef } from '../repair/reemit-rows';
import { triggerSourceRows, type SourceRows } from '../../capture/source-rows';
import { activityChunkWait } from '../chunk-wait';

export const formatPosition = (c: Position) => `${c.txid}:${c.id}`;

/** The position just before every row of `txid`. */
const beforeTxid = (txid: string): Position => ({ txid: (BigInt(txid) - 1n).toString(), id: MAX_ID });

/** The txid of the first row after `position` in (txid, id) order could have: where a hold keeps rows from. */
function nextTxid(position: Position): string {
  return position.id === MAX_ID ? (BigInt(position.txid) + 1n).toString() : position.txid;
}

/**
 * The replay covers what the drain had applied when it started: rows after `from` that are
 * visible in the drain's last complete snapshot. It holds compaction back from `from` on
 * (outbox/holds.ts) under `holder`, its workflow id, and starts where compaction had not cut yet:
 * rows below that cut were released before the replay began and may be going (`from` comes back
 * moved there, for the progress and the operator).
 */
export async function replayBounds(
  pool: pg.Pool,
  from: Position,
  holder: string,
): Promise<{ from: Position; to: Position; toSnapshot: string; rows: number }> {
  const kept = await beginHold(pool, holder, nextTxid(from));
  if (kept !== nextTxid(from)) from = beforeTxid(kept);
  const toSnapshot = (await drainAppliedSnapshot(pool)).snap;
  const r = await pool.query(
    `select count(*)::int as n from pipeline.outbox
      where (txid, id) > ($1::xid8, $2::bigint) and txid < pg_snapshot_xmax($3::pg_snapshot) and pg_visible_in_snapshot(txid, $3::pg_snapshot)`,
    [from.txid, from.id, toSnapshot],
  );
  return {
    from,
    to: { txid: (BigInt(toSnapshot.split(':')[1]) - 1n).toString(), id: MAX_ID },
    toSnapshot,
    rows: r.rows[0].n,
  };
}

export async function replayRange(
  pool: pg.Pool,
  redis: StoreRedis,
  keys: StoreKeys,
  opts: ApplyOptions,
  input: { from: Position; to: Position; toSnapshot?: string; limit: number },
  /** How fenced rows are re-read from the source (capture/source-rows.ts). */
  sourceRows: SourceRows = triggerSourceRows(pool),
  /** Its hold on the outbox (replayBounds): renewed before each chunk, released after the last. */
  holder?: string,
): Promise<{ rows: number; applied: number; skipped: number; reemitted: number; position: Position; done: boolean }> {
  // Throws OutboxReleasedError when the hold lapsed (the replay stopped for over an hour) and
  // compaction cut past `from`: the rest would be replayed with a gap nobody would see. With no
  // hold yet (begun on an older worker) it starts one where compaction had not cut, as replayBounds.
  if (holder) {
    const kept = await renewHold(pool, holder, nextTxid(input.from));
    if (kept !== nextTxid(input.from)) input = { ...input, from: beforeTxid(kept) };
  }
  const r = await pool.query<OutboxRow>(
    `select o.id::text as id, o.txid::text as txid, o.tbl, o.op, o.key, o.image, o.old_image, (extract(epoch from o.created_at) * 1000)::float8 as created_ms
       from pipeline.outbox o
      where (o.txid, o.id) > ($1::xid8, $2::bigint) and (o.txid, o.id) <= ($3::xid8, $4::bigint)
        and ($6::pg_snapshot is null or pg_visible_in_snapshot(o.txid, $6::pg_snapshot))
      order by o.txid, o.id limit $5`,
    [input.from.txid, input.from.id, input.to.txid, input.to.id, input.limit, input.toSnapshot ?? null],
  );
  const updates: { update: FeatureUpdate; source: number }[] = [];
  let skipped = 0;
  r.rows.forEach((row, source) => {
    try {
      for (const update of featureUpdatesFrom(row))
        if (!LOAD_FEATURES.has(update.feature)) updates.push({ update, source });
    } catch {
      skipped++; // malformed: the drain has dead-lettered it already
    }
  });
  const applied = await applyUpdates(redis, keys, updates, { ...opts, mode: 'replay' });
  // Changes older than the deletion fence aimed at fields the store no longer holds: the row may
  // have been deleted after the replayed range (its tombstone swept), so its current state is
  // re-emitted through the outbox instead of the old image (store/fence.ts).
  const fencedRows = new Map<string, SourceRowRef>();
  for (const f of applied.fenced) {
    const row = r.rows[f.source];
    if (isReemitTable(row.tbl)) fencedRows.set(`${row.tbl} ${row.key}`, { tbl: row.tbl, key: row.key });
  }
  if (fencedRows.size) await sourceRows.refresh([...fencedRows.values()], activityChunkWait());
  const last = r.rows[r.rows.length - 1];
  const done = r.rows.length < input.limit;
  if (done && holder) await releaseHold(pool, holder);
  return {
    rows: r.rows.length,
    applied: applied.applied,
    skipped: skipped + applied.failures.length,
    reemitted: fencedRows.size,
    position: last ? { txid: last.txid, id: last.id } : input.to,
    done,
  };
}
