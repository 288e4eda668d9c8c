/**
 * What verify compares the store against: the source tables as one moment saw them, and how to
 * tell when the store has caught up with that moment. Two shapes, one per capture mode:
 *
 *  - trigger: one snapshot S of the database holding the shop tables and the outbox. The store
 *    covers S once the drain's applied snapshot covers S (the outbox rows share the source's
 *    transactions); a change after S is an outbox row S does not see.
 *  - logical: one snapshot per source database (inventory, orders; one when they are the same),
 *    each with the WAL position L its snapshot had reached (the insert position read in the same
 *    statement: every transaction the snapshot sees has its commit record before L). The store
 *    covers the view once each source's capture has written past its L into the outbox and the
 *    drain has applied a snapshot of the pipeline's database taken after that. A change after the
 *    view is an outbox row the pipeline snapshot P0, taken before any source snapshot, does not
 *    see (a superset: a change committed before the view but captured after P0 counts too, so
 *    such a key is left to the next run rather than called a mismatch).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { withSnapshot } from '../activities/backfill/snapshot';
import { primaryWalLsn, ReplicaNotFollowingError, waitForReplay } from '../capture/replica';
import { logger } from '../log/logger';
import type { CaptureSource } from '../capture/sources';
import { parseLsn } from '../capture/pgoutput';
import { parseSnapshot, snapshotCovers } from '../db/pg-snapshot';
import { drainAppliedSnapshot } from '../outbox/shards';
import { readCaptureProgress } from '../outbox/capture-progress';
import type { SourceDatabases } from './source-features';

/**
 * A source row changed after the view (an outbox row): table, key, and an order's FCs; of an
 * order, its images too (what it did to the loads: reconcile/load-ranges.ts).
 */
export interface ChangedRow {
  id: string;
  txid: string;
  tbl: string;
  /** I, U, D, T (a TRUNCATE of the table), R, S. */
  op: string;
  key: string;
  fc: string | null;
  old_fc: string | null;
  /** Of orders only (null for other tables). */
  image: unknown;
  old_image: unknown;
}

export interface SourceView {
  /** Where the shop tables are read, each at the view's moment. */
  db: SourceDatabases;
  /**
   * Waits until the store has applied every change the view saw; false when the deadline came
   * first. `onWait` is called at every look (the activity heartbeats with it).
   */
  waitApplied(deadlineMs: number, onWait?: () => void): Promise<boolean>;
  /**
   * After waitApplied gave up: the changes the view saw that the drain has not applied yet, or null
   * when they are not known (not all captured yet, a TRUNCATE among them) or more than `limit`.
   */
  unappliedRows(limit: number): Promise<ChangedRow[] | null>;
  /** The source rows changed after the view. */
  changedRows(): Promise<ChangedRow[]>;
  /**
   * Snapshots of the outbox's database (the primary's): the drain's applied snapshot, which every
   * shard has applied, and one taken now (reconcile/load-ranges.ts, StoreReach).
   */
  drainApplied(): Promise<string>;
  outboxNow(): Promise<string>;
  /**
   * changedRows may hold changes the view saw (StoreReach.viewMaybe): those this snapshot sees;
   * undefined: every row may be one (not all captured yet); null: none.
   */
  viewMaybe(): string | null | undefined;
}

const CHANGED_ROW_COLUMNS = `o.id::text as id, o.txid::text as txid, o.tbl, o.op, o.key, o.image->>'fc_id' as fc,
  o.old_image->>'fc_id' as old_fc, case when o.tbl = 'orders' then o.image end as image,
  case when o.tbl = 'orders' then o.old_image end as old_image`;

/**
 * SQL: outbox rows a snapshot ($`n`) does not see, as index reads only: from its xmax on (up to
 * `below` when given), and, for each transaction of its in-progress list, that transaction's rows.
 * (Not "from its xmin on": a write transaction held open for an hour pins the xmin, and that range
 * was the whole hour of the outbox. Not one OR'd condition either: that was planned as a scan of
 * the whole outbox.) `filter` narrows the rows; `limit` ($-parameter text) caps each part.
 */
function rowsNotSeenBySql(n: number, opts: { below?: string; filter?: string; limit?: string } = {}): string {
  const snap = `$${n}::pg_snapshot`;
  const and = (cond?: string) => (cond ? ` and ${cond}` : '');
  const limit = opts.limit ? ` limit ${opts.limit}` : '';
  return `(select ${CHANGED_ROW_COLUMNS} from pipeline.outbox o
            where o.txid >= pg_snapshot_xmax(${snap})${and(opts.below && `o.txid < ${opts.below}`)}${and(opts.filter)}
            order by o.txid, o.id${limit})
          union all
          (select r.* from pg_snapshot_xip(${snap}) as x(txid)
            cross join lateral (select ${CHANGED_ROW_COLUMNS} from pipeline.outbox o
                                 where o.txid = x.txid${and(opts.filter)}${limit}) r${limit})`;
}

/** Outbox rows a pipeline snapshot does not see (see rowsNotSeenBySql). */
async function outboxRowsAfter(db: pg.Pool | pg.ClientBase, snapshot: string): Promise<ChangedRow[]> {
  return (await db.query<ChangedRow>(rowsNotSeenBySql(1), [snapshot])).rows;
}

/**
 * Outbox rows the pipeline snapshot saw that the drain has not applied (at most `limit` + 1): beyond
 * every shard's cursor snapshot, that is in its in-progress list or from its xmax on (two short
 * index ranges, as in outboxRowsAfter), and visible in `snapshot`.
 */
async function rowsBeyondDrain(pipeline: pg.Pool, snapshot: string, limit: number): Promise<ChangedRow[]> {
  const applied = (await drainAppliedSnapshot(pipeline)).snap;
  if (snapshotCovers(parseSnapshot(applied), parseSnapshot(snapshot))) return [];
  // Each part stops at the limit: under a backlog the drain's cursor is far behind.
  const sql = rowsNotSeenBySql(1, {
    below: 'pg_snapshot_xmax($2::pg_snapshot)',
    filter: 'pg_visible_in_snapshot(o.txid, $2::pg_snapshot)',
    limit: '$3',
  });
  const r = await pipeline.query<ChangedRow>(`${sql} limit $3`, [applied, snapshot, limit + 1]);
  return r.rows;
}

/**
 * Has the drain applied everything the pipeline snapshot saw? Nothing it saw lies beyond the
 * drain's cursors: also true of a drain that is not running (paused, or none in a test) but has
 * nothing left to apply.
 */
export async function drainCovers(pipeline: pg.Pool, snapshot: string): Promise<boolean> {
  return (await rowsBeyondDrain(pipeline, snapshot, 0)).length === 0;
}

/** The unapplied rows, or null when a TRUNCATE is among them (every key of its table) or there are more than `limit`. */
async function unappliedOf(pipeline: pg.Pool, snapshot: string, limit: number): Promise<ChangedRow[] | null> {
  const rows = await rowsBeyondDrain(pipeline, snapshot, limit);
  return rows.length > limit || rows.some((r) => r.op === 'T') ? null : rows;
}

/** A snapshot of the pipeline database taken now (pg_snapshot text). */
export async function pipelineSnapshot(pipeline: pg.Pool): Promise<string> {
  return (await pipeline.query<{ s: string }>(`select pg_current_snapshot()::text as s`)).rows[0]!.s;
}

/**
 * The trigger capture's view: `source` (the replica when configured) holds the shop tables and the
 * outbox; `cursorDb` (the primary) the drain's cursor.
 */
export function withTriggerView<T>(
  source: pg.Pool,
  cursorDb: pg.Pool,
  fn: (view: SourceView) => Promise<T>,
): Promise<T> {
  return withSnapshot(source, (client, snapshot) =>
    fn({
      db: { inventory: client, orders: client },
      async waitApplied(deadlineMs, onWait) {
        for (;;) {
          onWait?.();
          if (await drainCovers(cursorDb, snapshot.text)) return true;
          if (Date.now() >= deadlineMs) return false;
          await sleep(200);
        }
      },
      unappliedRows: (limit) => unappliedOf(cursorDb, snapshot.text, limit),
      // from the primary: the drain applies its outbox, which a replica may not have replayed yet
      // (the same transaction ids: a replica's snapshot judges the primary's rows rightly)
      changedRows: () => outboxRowsAfter(cursorDb, snapshot.text),
      drainApplied: async () => (await drainAppliedSnapshot(cursorDb)).snap,
      outboxNow: () => pipelineSnapshot(cursorDb),
      viewMaybe: () => null, // the outbox rows the view's own snapshot does not see: exactly the later changes
    }),
  );
}

interface OpenSource {
  source: CaptureSource;
  client: pg.Client;
  lsn: bigint;
}

/**
 * A REPEATABLE READ snapshot of one source database, and the WAL position it had reached. From the
 * source's replica when it has one: once the replica has replayed everything the primary had
 * written when this was called (so the snapshot sees every change the pipeline's snapshot taken
 * before holds), and the position is the replica's replay position.
 */
async function openSourceSnapshot(source: CaptureSource, useReplica = true): Promise<OpenSource> {
  const replayedFrom = source.replicaUrl && useReplica ? await currentWalLsn(source.url) : null;
  const client = new pg.Client({
    connectionString: (useReplica && source.replicaUrl) || source.url,
    application_name: 'fresh-badges-verify',
    connectionTimeoutMillis: 5_000,
  });
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => {});
    if (replayedFrom === null) throw err;
    // a replica that cannot be reached: verify reads the primary rather than fail every run while it is down
    logger('verify').warn(
      `the replica of ${source.name} cannot be reached (${(err as Error).message}): taking the snapshot on the primary`,
    );
    return openSourceSnapshot(source, false);
  }
  try {
    if (replayedFrom !== null) {
      try {
        await waitForReplay(client, replayedFrom, source.name, () => currentWalLsn(source.url));
      } catch (err) {
        if (!(err instanceof ReplicaNotFollowingError)) throw err;
        // a replica on another history would judge the store against changes the source lost
        logger('verify').warn(err.message);
        await client.end().catch(() => {});
        return await openSourceSnapshot(source, false);
      }
    }
    await client.query(`begin isolation level repeatable read read only`);
    // The snapshot is taken as this statement starts; the position is read after it (a commit
    // the snapshot sees is at or before it).
    const position = replayedFrom !== null ? 'pg_last_wal_replay_lsn()' : 'pg_current_wal_insert_lsn()';
    const r = await client.query<{ lsn: string }>(`select ${position}::text as lsn`);
    return { source, client, lsn: parseLsn(r.rows[0]!.lsn) };
  } catch (err) {
    await client.end().catch(() => {});
    throw err;
  }
}

async function currentWalLsn(url: string): Promise<string> {
  const c = new pg.Client({ connectionString: url, application_name: 'fresh-badges-verify' });
  await c.connect();
  try {
    return await primaryWalLsn(c);
  } finally {
    await c.end().catch(() => {});
  }
}

/** Has the source's capture written into the outbox everything up to `lsn`? */
async function capturedThrough(pipeline: pg.Pool, s: OpenSource): Promise<boolean> {
  const p = await readCaptureProgress(pipeline, s.source.name);
  return !!p && p.lostAtMs === null && p.lsn >= s.lsn;
}

/** How long a logical view waits, before its run, for the capture to reach the view's positions. */
const EARLY_CAPTURE_WAIT_MS = 5_000;

/** The logical capture's view over the sources captureSources() names (capture/sources.ts). */
export async function withLogicalView<T>(
  sources: CaptureSource[],
  pipeline: pg.Pool,
  fn: (view: SourceView) => Promise<T>,
): Promise<T> {
  const p0 = await pipelineSnapshot(pipeline);
  const open: OpenSource[] = [];
  try {
    for (const s of sources) open.push(await openSourceSnapshot(s));
    const of = (tbl: string) => open.find((o) => (o.source.tables as string[]).includes(tbl))!.client;
    // p1: taken once everything the view saw is in the outbox; the drain must apply that much.
    // Looked for a few seconds now, before the run compares anything: the outbox rows between p0
    // and p1 may be changes the view saw, so a later p1 (taken only after a long first pass)
    // would put every order of the run in the range that explains a load difference
    // (reconcile/load-ranges.ts, viewMaybe).
    let p1: string | null = null;
    for (const until = Date.now() + EARLY_CAPTURE_WAIT_MS; p1 === null && Date.now() < until; await sleep(50))
      if ((await Promise.all(open.map((o) => capturedThrough(pipeline, o)))).every(Boolean))
        p1 = await pipelineSnapshot(pipeline);
    return await fn({
      db: { inventory: of('inventory'), orders: of('orders') },
      async waitApplied(deadlineMs, onWait) {
        for (;;) {
          onWait?.();
          if (p1 === null && (await Promise.all(open.map((o) => capturedThrough(pipeline, o)))).every(Boolean))
            p1 = await pipelineSnapshot(pipeline);
          if (p1 !== null && (await drainCovers(pipeline, p1))) return true;
          if (Date.now() >= deadlineMs) return false;
          await sleep(200);
        }
      },
      // not all captured yet: what the drain still owes is not known
      unappliedRows: async (limit) => (p1 === null ? null : unappliedOf(pipeline, p1, limit)),
      changedRows: () => outboxRowsAfter(pipeline, p0),
      drainApplied: async () => (await drainAppliedSnapshot(pipeline)).snap,
      outboxNow: () => pipelineSnapshot(pipeline),
      // rows after p0 (taken before the sources' snapshots) and seen by p1 (taken once they were
      // captured up to the view) may be changes the view saw: the outbox rows carry no source LSN
      viewMaybe: () => p1 ?? undefined,
    });
  } finally {
    for (const o of open) {
      await o.client.query('rollback').catch(() => {});
      await o.client.end().catch(() => {});
    }
  }
}
