/**
 * Outbox compaction: deletes rows that every consumer has applied and that are older than the
 * retention. A consumer has applied every row of a transaction below the xmin of its cursor's
 * snapshot (such a transaction had finished when the snapshot was taken: committed and visible,
 * or aborted), so rows with txid below the lowest such xmin over all consumers may go. A consumer
 * that is behind keeps its rows however old they are; rows a consumer has not seen are never
 * touched, so compaction is safe while the drain runs. (A transaction left open holds that xmin
 * back: it delays compaction, as it delays vacuum, but no longer freshness.) Bounded: `chunk` rows
 * per short transaction, at most `maxRows` per call, progress in heartbeats. The outbox is then
 * vacuumed and analysed by compaction itself (vacuum-tables.ts): the pipeline never relies on
 * autovacuum.
 */
import { names } from '../../config';
import { drainShards, LAPSED_HOLD_KEPT_MS, readDrainLayout, type Position } from '../../outbox';
import type pg from 'pg';
import { withTransaction } from '../../db/transaction';
import { RETRIED_WINDOW_MS } from '../dead-letters/reapply';

export interface PruneResult {
  deleted: number;
  /** Rows with a txid below this were eligible. null when there is no consumer. */
  floor: string | null;
  /** True when the call stopped at maxRows with eligible rows possibly left. */
  more: boolean;
  /** The last row deleted (null when none): where the next call of the same run goes on. */
  after: Position | null;
}

/**
 * The lowest xmin over every consumer's applied snapshot, lowered to the lowest hold in force (a
 * replay's: outbox/holds.ts). Of the drain's cursor rows, those of the shards in force
 * (outbox/shards.ts): a cursor row a retired shard left behind never moves again and would hold
 * every row back for good. Null with no consumer at all: nothing is pruned.
 */
export async function lowestCursor(db: pg.Pool | pg.ClientBase): Promise<string | null> {
  const current = drainShards((await readDrainLayout(db)).shards).map((s) => s.consumer);
  const r = await db.query(
    `with cursors as (
       select min(pg_snapshot_xmin(snap_from)) as xmin from pipeline.consumer_offsets
        where consumer = any($1) or not (consumer = $2 or consumer like $2 || '/%')),
     holds as (select min(txid) as txid from pipeline.outbox_holds where expires_at > clock_timestamp())
     select (case when cursors.xmin is null then null else least(cursors.xmin, holds.txid) end)::text as floor
       from cursors, holds`,
    [current, names.drainConsumer],
  );
  return r.rows[0]?.floor ?? null;
}

/**
 * The txid below which a prune may delete, and the floor it records: the lowest cursor's, but no
 * higher than the xmax of the last drain snapshot applied before the retention's start (every
 * transaction id below it was handed out before then). The floor was the lowest cursor's alone,
 * while rows younger than the retention stay whatever their txid: a Redis restored from a file
 * written before the run (its position below that floor, its rows all still there) was rebuilt
 * from the sources instead of re-delivered from the outbox (activities/drain/divergence.ts).
 *
 * With no snapshot that old (an install younger than the retention: the log keeps the newest
 * snapshot past it, so a quiet drain still has one), the oldest snapshot logged bounds it: a row
 * older than the retention was written before that snapshot was applied, almost always before it
 * was taken too, so its txid is below the snapshot's xmax (one written in between waits for a
 * later run). Without that bound each run's last prune chunk read every applied row of a young
 * install to find none old enough. With no snapshot at all: the lowest cursor's.
 */
async function retentionCut(client: pg.ClientBase, lowest: string, retentionMs: number): Promise<string> {
  const r = await client.query<{ cut: string }>(
    `select least($1::xid8, coalesce(
              (select pg_snapshot_xmax(snap) from pipeline.drain_snapshots
                where applied_at < clock_timestamp() - $2 * interval '1 millisecond'
                order by applied_at desc limit 1),
              (select pg_snapshot_xmax(snap) from pipeline.drain_snapshots order by applied_at limit 1)))::text as cut`,
    [lowest, retentionMs],
  );
  return r.rows[0]!.cut;
}

export async function pruneOutbox(
  pool: pg.Pool,
  opts: {
    retentionMs: number;
    chunk: number;
    maxRows: number;
    /** Where an earlier call of the same run stopped (its `after`): rows before it were looked at. */
    after?: Position | null;
    onProgress?: (deleted: number) => void;
  },
): Promise<PruneResult> {
  // Recorded before anything is deleted: a store found behind the cursor can be re-delivered
  // from its own position only while the outbox still holds it (store/store-position.ts). The
  // floor row is locked first and the cursors read after: a drain pass deciding to rewind holds it
  // FOR SHARE until its commit (readOutboxFloor), so its rewound cursor is the one read here; a
  // replay starting or renewing its hold does the same (outbox/holds.ts).
  const floor = await withTransaction(pool, async (client) => {
    await client.query(`select 1 from pipeline.outbox_floor for update`);
    // holds lapsed long ago (outbox/holds.ts); a lapsed hold holds nothing back (lowestCursor)
    await client.query(
      `delete from pipeline.outbox_holds where expires_at < clock_timestamp() - $1 * interval '1 millisecond'`,
      [LAPSED_HOLD_KEPT_MS],
    );
    const lowest = await lowestCursor(client);
    if (!lowest) return null;
    const cut = await retentionCut(client, lowest, opts.retentionMs);
    await client.query(`update pipeline.outbox_floor set below = greatest(below, $1::xid8)`, [cut]);
    return cut;
  });
  const given = opts.after ?? null;
  if (!floor) return { deleted: 0, floor: null, more: false, after: given };
  let deleted = 0;
  let after = given;
  while (deleted < opts.maxRows) {
    const limit = Math.min(opts.chunk, opts.maxRows - deleted);
    const r = await deleteChunk(pool, { floor, retentionMs: opts.retentionMs, limit, after });
    deleted += r.deleted;
    after = r.last ?? after;
    opts.onProgress?.(deleted);
    if (r.deleted < limit) return { deleted, floor, more: false, after };
  }
  return { deleted, floor, more: true, after };
}

/**
 * One chunk of eligible rows, from `after` on in (txid, id) order. Starting after the last row
 * deleted, not at the outbox's start: the index entries of the rows this run deleted stay until
 * the VACUUM after it, and a scan from the start walked all of them again for every chunk (in an
 * outbox of 10,000,000 rows the first call of 2,000,000 took 9 s, the third 30 s; now 6 s each).
 * Every row before `after` has a txid below
 * the floor, so its transaction had ended: none appears there later. (One too young to go then is
 * left to the next run, which starts from the beginning.)
 */
async function deleteChunk(
  pool: pg.Pool,
  c: { floor: string; retentionMs: number; limit: number; after: Position | null },
): Promise<{ deleted: number; last: Position | null }> {
  const r = await pool.query<{ deleted: number; txid: string | null; id: string | null }>(
    `with picked as (
       select txid, id from pipeline.outbox
        where txid < $1::xid8 and (txid, id) > ($4::xid8, $5::bigint)
          and created_at < clock_timestamp() - $2 * interval '1 millisecond'
        order by txid, id limit $3),
     gone as (delete from pipeline.outbox o using picked p where o.txid = p.txid and o.id = p.id returning 1),
     last as (select txid, id from picked order by txid desc, id desc limit 1)
     select (select count(*) from gone)::int as deleted, (select txid::text from last) as txid,
            (select id::text from last) as id`,
    [c.floor, c.retentionMs, c.limit, c.after?.txid ?? '0', c.after?.id ?? '0'],
  );
  const row = r.rows[0]!;
  return { deleted: row.deleted, last: row.txid === null ? null : { txid: row.txid, id: row.id! } };
}

/**
 * Dead letters settled longer ago than the retention: retried successfully, or discarded by an
 * operator (kept that long for audit: who, when, why).
 */
export async function pruneDeadLetters(pool: pg.Pool, retentionDays: number): Promise<number> {
  // A retried letter is kept at least RETRIED_WINDOW_MS whatever the retention: within it, a Redis
  // back from an older file is healed by applying it again (activities/dead-letters/reapply.ts).
  const r = await pool.query(
    `delete from pipeline.dead_letters
      where coalesce(retried_at, discarded_at) is not null and coalesce(retried_at, discarded_at) < now() - $1 * interval '1 day'
        and (retried_at is null or discarded_at is not null or retried_at < now() - $2 * interval '1 millisecond')`,
    [retentionDays, RETRIED_WINDOW_MS],
  );
  return r.rowCount ?? 0;
}

/**
 * The drain's log of applied snapshots, past the outbox retention (nothing needs it once its rows
 * are gone), but the newest of those: the next prune bounds its floor by it (retentionCut), and
 * after a quiet hour (no batch logged) there would be none left, and the floor would go up to
 * the lowest cursor's again.
 */
export async function pruneBatchLog(pool: pg.Pool, retentionMs: number): Promise<number> {
  const r = await pool.query(
    `with cutoff as (select now() - $1 * interval '1 millisecond' as at),
          newest as (select shard, batch from pipeline.drain_snapshots, cutoff
                      where applied_at < cutoff.at order by applied_at desc limit 1)
     delete from pipeline.drain_snapshots s using cutoff
      where s.applied_at < cutoff.at and (s.shard, s.batch) not in (select shard, batch from newest)`,
    [retentionMs],
  );
  return r.rowCount ?? 0;
}
