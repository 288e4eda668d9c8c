/**
 * When each landed change reached Redis: the applied time of the first drain snapshot that saw its
 * transaction, from the drain's log (pipeline.drain_snapshots: one row per batch a shard applied,
 * often several a second). The drain's snapshots only grow, batch after batch, so the first one to
 * see a transaction is found by a binary search over them in batch order. null for changes applied
 * before the snapshot log existed. With several drain shards, each logs its own snapshots: the
 * latest of their answers (a change every shard applies is visible everywhere only then; for one a
 * single shard applies, the others' snapshots saw it at about the same time, so the answer errs
 * late by the shards' skew, never early).
 *
 * One clock per landing call, over the log as it was at the call's first read (its shards and
 * their last batches). A snapshot taken before a change was written cannot see it, so only
 * snapshots taken from the oldest change's time on count; a later chunk of the call that holds an
 * older change reaches further back, and each chunk gets the answer a single read from the call's
 * oldest change would give.
 *
 * Memory: a landing far behind has hours of snapshots after its changes (millions of rows), and
 * only the first that sees each transaction is the answer. Each chunk's changes read the log per
 * shard in pages, in batch order, from the first snapshot that could see one of them (its xmax
 * above the chunk's lowest txid: migration 018's index); a shard's read stops at the page whose
 * last snapshot sees every transaction of the chunk, or at the shard's end. One page per shard is
 * held at a time. Pages start small and double up to `pageRows`: a chunk's changes are usually
 * seen within a few seconds of snapshots, a long transaction's may take hours of them.
 */
import type pg from 'pg';
import { parseSnapshot, visibleIn, type PgSnapshot } from '../../db/pg-snapshot';

/** Snapshots read per shard per query at most: a few thousand are a few hundred KB, parsed in milliseconds. */
export const SNAPSHOT_PAGE_ROWS = 2_000;
/** The first page's size (per shard, for each chunk): a chunk's changes are usually all seen within a few hundred snapshots. */
const FIRST_PAGE_ROWS = 250;

/** A change as the clock needs it: its transaction and its source time (ms since the epoch, text). */
export type ClockRow = { txid: string | null; source_ms: string | null };

/** A shard of the log and the last batch it had logged when the call first read it. */
type ShardEnd = { shard: number; last: string };

/** A logged snapshot: its batch, the snapshot, and when it was applied (ms since the epoch, text). */
type Logged = { batch: string; snap: PgSnapshot; ms: string };

/** A shard still being read for a chunk: from after `after`, for the transactions none of its snapshots read so far saw. */
type OpenShard = ShardEnd & { after: string; pending: bigint[] };

/** The applied clock of one landing call: each chunk's changes in, their applied times (ms, text, or null) out, in order. */
export function appliedClock(
  pool: pg.Pool,
  { pageRows = SNAPSHOT_PAGE_ROWS }: { pageRows?: number } = {},
): (rows: ClockRow[]) => Promise<(string | null)[]> {
  const page = Math.max(1, Math.floor(pageRows));
  let ends: ShardEnd[] | null = null;
  let from: number | null = null;
  return async (rows) => {
    if (rows.length === 0) return [];
    // A snapshot that saw a change was taken after the change was written.
    const oldest = rows.reduce((m, r) => Math.min(m, Number(r.source_ms)), Infinity);
    from = from === null ? oldest : Math.min(from, oldest);
    ends ??= await readShardEnds(pool);
    const txids = [...new Set(rows.map((r) => BigInt(r.txid!)))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const latest = await firstSeenTimes(pool, ends, from, txids, page);
    return rows.map((r) => latest.get(BigInt(r.txid!)) ?? null);
  };
}

/**
 * Each shard of the log and its last batch: a walk over the primary key (shard, batch), one probe
 * per shard, however long the log.
 */
async function readShardEnds(pool: pg.Pool): Promise<ShardEnd[]> {
  const r = await pool.query<{ shard: number; last: string }>(
    `with recursive shards as (
       (select shard from pipeline.drain_snapshots order by shard limit 1)
       union all
       select (select s.shard from pipeline.drain_snapshots s where s.shard > shards.shard order by s.shard limit 1)
         from shards where shards.shard is not null
     )
     select shard, (select max(s.batch) from pipeline.drain_snapshots s where s.shard = shards.shard)::text as last
       from shards where shard is not null`,
  );
  return r.rows;
}

/**
 * For each transaction (ascending), the applied time of the first snapshot taken at or after
 * `fromMs` that saw it, the latest over the shards; absent when no shard's did.
 */
async function firstSeenTimes(
  pool: pg.Pool,
  ends: ShardEnd[],
  fromMs: number,
  txids: bigint[],
  pageRows: number,
): Promise<Map<bigint, string>> {
  const latest = new Map<bigint, string>();
  let open = await firstBatches(pool, ends, txids);
  for (let limit = Math.min(FIRST_PAGE_ROWS, pageRows); open.length > 0; limit = Math.min(limit * 2, pageRows)) {
    const pages = await readPages(pool, open, fromMs, limit);
    const next: OpenShard[] = [];
    for (const shard of open) {
      const log = pages.get(shard.shard) ?? [];
      const pending = settle(log, shard.pending, latest);
      // A short page: the shard's log (as the call first read it) ends there.
      if (pending.length > 0 && log.length === limit)
        next.push({ ...shard, after: log[log.length - 1].batch, pending });
    }
    open = next;
  }
  return latest;
}

/**
 * Where each shard's read for these transactions starts: just before its first snapshot whose xmax
 * is above the lowest of them (every earlier one, its xmax no higher, sees none of them). Through
 * the index (shard, xmax, batch): as the snapshots grow, xmax order is batch order. A shard none of
 * whose snapshots can see them is not read.
 */
async function firstBatches(pool: pg.Pool, ends: ShardEnd[], txids: bigint[]): Promise<OpenShard[]> {
  const r = await pool.query<{ shard: number; start: string | null }>(
    `select p.shard, (select s.batch from pipeline.drain_snapshots s
                       where s.shard = p.shard and pg_snapshot_xmax(s.snap) > $3::xid8 and s.batch <= p.last
                       order by pg_snapshot_xmax(s.snap), s.batch limit 1)::text as start
       from unnest($1::int[], $2::int8[]) as p(shard, last)`,
    [ends.map((e) => e.shard), ends.map((e) => e.last), String(txids[0])],
  );
  const lastOf = new Map(ends.map((e) => [e.shard, e.last]));
  return r.rows
    .filter((row) => row.start !== null)
    .map((row) => ({
      shard: row.shard,
      last: lastOf.get(row.shard)!,
      after: String(BigInt(row.start!) - 1n),
      pending: txids,
    }));
}

/** The next `limit` of each open shard's snapshots taken at or after `fromMs`, in batch order (the primary key). */
async function readPages(
  pool: pg.Pool,
  open: OpenShard[],
  fromMs: number,
  limit: number,
): Promise<Map<number, Logged[]>> {
  const r = await pool.query<{ shard: number; batch: string; snap: string; ms: string }>(
    `select p.shard, s.batch::text as batch, s.snap::text as snap, (extract(epoch from s.applied_at) * 1000)::bigint::text as ms
       from unnest($1::int[], $2::int8[], $3::int8[]) as p(shard, after, last)
       cross join lateral (
         select s.batch, s.snap, s.applied_at from pipeline.drain_snapshots s
          where s.shard = p.shard and s.batch > p.after and s.batch <= p.last
            and s.taken_at >= to_timestamp($4::float8 / 1000)
          order by s.batch limit $5) s
      order by p.shard, s.batch`,
    [open.map((s) => s.shard), open.map((s) => s.after), open.map((s) => s.last), fromMs, limit],
  );
  const pages = new Map<number, Logged[]>();
  for (const row of r.rows) {
    const logged = { batch: row.batch, snap: parseSnapshot(row.snap), ms: row.ms };
    const page = pages.get(row.shard);
    if (page) page.push(logged);
    else pages.set(row.shard, [logged]);
  }
  return pages;
}

/**
 * Of `pending` (not seen by the shard's earlier pages), records the time of the page's first
 * snapshot that sees each, if later than another shard's (`latest`); returns those still unseen.
 */
function settle(log: Logged[], pending: bigint[], latest: Map<bigint, string>): bigint[] {
  if (log.length === 0) return pending;
  const unseen: bigint[] = [];
  for (const txid of pending) {
    let lo = 0;
    let hi = log.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (visibleIn(log[mid].snap, txid)) hi = mid;
      else lo = mid + 1;
    }
    if (lo === log.length) {
      unseen.push(txid);
      continue;
    }
    const seen = latest.get(txid);
    if (seen === undefined || Number(log[lo].ms) > Number(seen)) latest.set(txid, log[lo].ms);
  }
  return unseen;
}
