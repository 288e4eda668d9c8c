/**
 * The outbox side of capture from the WAL: writing captured source transactions into the outbox
 * together with the source's progress (pipeline.capture_progress, migration 011), in one
 * transaction, so the two never disagree after a crash.
 */
import type pg from 'pg';
import type { CapturedTransaction } from '../capture/transactions';
import { formatLsn, parseLsn } from '../capture/pgoutput';
import { withTransaction } from '../db/transaction';
import { finishChunks } from './capture-chunks';

export interface CaptureProgressRow {
  source: string;
  slot: string;
  lsn: bigint;
  coveredAtMs: number | null;
  rows: number;
  /** Set while the source hands over from the trigger capture (capture/mode-switch.ts). */
  switchId: string | null;
}

/** Registers a source (idempotent); its slot name is updated when it changed. */
export async function registerCaptureSource(db: pg.Pool | pg.ClientBase, source: string, slot: string): Promise<void> {
  await db.query(
    `insert into pipeline.capture_progress (source, slot) values ($1, $2)
     on conflict (source) do update set slot = excluded.slot`,
    [source, slot],
  );
}

export async function readCaptureProgress(
  db: pg.Pool | pg.ClientBase,
  source: string,
): Promise<CaptureProgressRow | null> {
  const r = await db.query<{
    source: string;
    slot: string;
    lsn: string;
    covered_ms: number | null;
    rows: string;
    switch_id: string | null;
  }>(
    `select source, slot, lsn::text as lsn, (extract(epoch from covered_at) * 1000)::float8 as covered_ms, rows, switch_id
       from pipeline.capture_progress where source = $1`,
    [source],
  );
  const row = r.rows[0];
  return row
    ? {
        source: row.source,
        slot: row.slot,
        lsn: parseLsn(row.lsn),
        coveredAtMs: row.covered_ms,
        rows: Number(row.rows),
        switchId: row.switch_id,
      }
    : null;
}

/** What became of the chunks whose high watermarks a batch met (capture/watermark-read.ts). */
export interface ChunkOutcome {
  written: { id: string; rows: number }[];
  abandoned: string[];
}

export interface WriteResult {
  /** Source transactions written now (those at or below the recorded position were written before). */
  transactions: number;
  rows: number;
  /** The source's position after the write: confirm the slot up to here. */
  lsn: bigint;
}

/**
 * Writes the transactions (in commit order) into the outbox and moves the source's progress to the
 * last one, in one transaction. The progress row is locked first: a second capture of the same
 * source (a stale run) waits, then skips what this one wrote. Transactions ending at or below the
 * recorded position were written by an earlier run whose slot confirmation did not happen (a crash
 * between the commit and the confirmation): they are skipped, so nothing is written twice.
 */
export async function writeCapturedTransactions(
  pipeline: pg.Pool,
  source: string,
  transactions: CapturedTransaction[],
  opts: {
    /** The batch holds the hand-over marker: from now on the triggers write nothing. */
    switchDone?: boolean;
    /** Chunks read between watermarks whose rows the batch holds, or that were abandoned. */
    chunks?: ChunkOutcome;
  } = {},
): Promise<WriteResult> {
  return withTransaction(pipeline, async (client) => {
    const at = await client.query<{ lsn: string }>(
      `select lsn::text as lsn from pipeline.capture_progress where source = $1 for update`,
      [source],
    );
    if (!at.rowCount) throw new Error(`capture source ${source} is not registered (pipeline.capture_progress)`);
    const done = parseLsn(at.rows[0]!.lsn);
    const fresh = transactions.filter((t) => t.endLsn > done);
    if (!fresh.length) return { transactions: 0, rows: 0, lsn: done };

    const cols: { tbl: string[]; op: string[]; key: string[]; image: (string | null)[]; old: (string | null)[] } = {
      tbl: [],
      op: [],
      key: [],
      image: [],
      old: [],
    };
    let covered: number | null = null;
    for (const t of fresh) {
      for (const r of t.rows) {
        cols.tbl.push(r.tbl);
        cols.op.push(r.op);
        cols.key.push(r.key);
        cols.image.push(r.image);
        cols.old.push(r.oldImage);
      }
      for (const tick of t.ticks) covered = Math.max(covered ?? tick.at, tick.at);
    }
    if (cols.tbl.length) {
      // One statement, rows in commit order: identity values are handed out in that order, so for
      // one source row the outbox ids follow the order of its changes.
      await client.query(
        `insert into pipeline.outbox (tbl, op, key, image, old_image)
         select tbl, op, key, image::json, old_image::json
           from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) with ordinality
                as r(tbl, op, key, image, old_image, n)
          order by n`,
        [cols.tbl, cols.op, cols.key, cols.image, cols.old],
      );
    }
    if (opts.chunks) await finishChunks(client, opts.chunks);
    const lsn = fresh[fresh.length - 1]!.endLsn;
    await client.query(
      `update pipeline.capture_progress
          set lsn = $2::pg_lsn, rows = rows + $3,
              covered_at = greatest(covered_at, to_timestamp($4::float8 / 1000)), updated_at = now(),
              switch_id = case when $5 then null else switch_id end
        where source = $1`,
      [source, formatLsn(lsn), cols.tbl.length, covered, !!opts.switchDone],
    );
    return { transactions: fresh.length, rows: cols.tbl.length, lsn };
  });
}

/**
 * SQL: the time up to which every source's committed changes are in the outbox, or null when no
 * source captures from the WAL (the trigger capture writes the outbox in the source's own
 * transaction). A source with no tick yet counts as the epoch: reads stay stale until it has one.
 */
export const CAPTURED_THROUGH_SQL = `(select min(coalesce(covered_at, 'epoch'::timestamptz)) from pipeline.capture_progress)`;

/** Marks the source as handing over from the trigger capture at the marker `id` (capture/mode-switch.ts). */
export async function setCaptureSwitch(db: pg.Pool | pg.ClientBase, source: string, id: string | null): Promise<void> {
  await db.query(`update pipeline.capture_progress set switch_id = $2 where source = $1`, [source, id]);
}

/** Forgets a source (its capture ended: the trigger capture took over, or the source left the configuration). */
export async function forgetCaptureSource(db: pg.Pool | pg.ClientBase, source: string): Promise<void> {
  await db.query(`delete from pipeline.capture_progress where source = $1`, [source]);
}
