/**
 * Chunks read from a source between watermarks (migration 012, capture/watermark-read.ts): the
 * reader creates one, stores what it read, and waits; the capture of that source writes it into
 * the outbox at its high watermark and marks it written (or abandoned) in the same transaction.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';

type Db = pg.Pool | pg.ClientBase;

export type ChunkState = 'open' | 'read' | 'written' | 'abandoned';

export interface ChunkRequest {
  source: string;
  tbl: string;
  /** Outbox keys to read; or a range: the rows after `afterKey` (null: from the start), at most `limit`. */
  keys?: string[];
  range?: { afterKey: string | null; limit: number };
  /** Load sums (orders) from this day (yyyymmdd) on: kept in after_key. */
  fromDay?: string;
  deleteAbsent?: boolean;
}

export interface ReadRow {
  key: string;
  image: unknown;
}

export interface StoredChunk {
  id: string;
  /** Its watermarks carry it (migration 023): one of an id handed out again is another chunk's. Null before 023. */
  token: string | null;
  tbl: string;
  keys: string[] | null;
  deleteAbsent: boolean;
  /** A range's start key, or the first day of a chunk of load sums. */
  afterKey: string | null;
  snapshot: string;
  rows: ReadRow[];
}

export async function createChunk(db: Db, r: ChunkRequest): Promise<{ id: string; token: string }> {
  const token = randomUUID();
  const res = await db.query<{ id: string }>(
    `insert into pipeline.capture_chunks (source, tbl, keys, after_key, row_limit, delete_absent, token)
     values ($1, $2, $3, $4, $5, $6, $7) returning id::text as id`,
    [
      r.source,
      r.tbl,
      r.keys ?? null,
      r.range?.afterKey ?? r.fromDay ?? null,
      r.range?.limit ?? null,
      !!r.deleteAbsent,
      token,
    ],
  );
  return { id: res.rows[0]!.id, token };
}

/** The rows read in `snapshot`; the chunk is ready for its high watermark. */
export async function storeChunkRead(db: Db, id: string, snapshot: string, rows: ReadRow[]): Promise<void> {
  await db.query(
    `update pipeline.capture_chunks set snapshot = $2::pg_snapshot, rows = $3::json, state = 'read' where id = $1`,
    [id, snapshot, JSON.stringify(rows)],
  );
}

export async function chunkState(db: Db, id: string): Promise<{ state: ChunkState; written: number | null }> {
  const r = await db.query<{ state: ChunkState; written: number | null }>(
    `select state, written from pipeline.capture_chunks where id = $1`,
    [id],
  );
  if (!r.rowCount) throw new Error(`capture chunk ${id} does not exist`);
  return r.rows[0]!;
}

/** The chunks whose high watermark the capture met, as read (those not read are absent). */
export async function loadReadChunks(db: Db, ids: string[]): Promise<Map<string, StoredChunk>> {
  const r = await db.query<{
    id: string;
    tbl: string;
    keys: string[] | null;
    delete_absent: boolean;
    after_key: string | null;
    snapshot: string;
    rows: ReadRow[];
    token: string | null;
  }>(
    `select id::text as id, tbl, keys, delete_absent, after_key, snapshot::text as snapshot, rows, token
       from pipeline.capture_chunks where id = any($1::bigint[]) and state = 'read'`,
    [ids],
  );
  return new Map(
    r.rows.map((row) => [
      row.id,
      {
        id: row.id,
        token: row.token,
        tbl: row.tbl,
        keys: row.keys,
        deleteAbsent: row.delete_absent,
        afterKey: row.after_key,
        snapshot: row.snapshot,
        rows: row.rows,
      },
    ]),
  );
}

/** Inside the capture's outbox transaction: what became of each chunk met. */
export async function finishChunks(
  client: pg.ClientBase,
  outcome: { written: { id: string; rows: number }[]; abandoned: string[] },
): Promise<void> {
  if (outcome.written.length)
    await client.query(
      `update pipeline.capture_chunks c set state = 'written', written = w.n, done_at = now(), rows = null
         from unnest($1::bigint[], $2::int[]) w(id, n) where c.id = w.id and c.state in ('open', 'read')`,
      [outcome.written.map((w) => w.id), outcome.written.map((w) => w.rows)],
    );
  if (outcome.abandoned.length)
    await client.query(
      `update pipeline.capture_chunks set state = 'abandoned', done_at = now(), rows = null
        where id = any($1::bigint[]) and state in ('open', 'read')`,
      [outcome.abandoned],
    );
}

/**
 * How long compaction keeps a chunk: far longer than any reader waits on one (a minute without the
 * capture moving on, 10 minutes for a backfill; a retry waits again on the chunks its attempt
 * handed over, retried within minutes).
 */
export const CHUNK_RETENTION_H = 24;

/**
 * Chunks written or abandoned longer ago than `olderThanHours` (compaction), and those still open
 * or read that long after they were made: their reader died. A reader still waiting on one finds it
 * gone and reads again (capture/watermark-read.ts, chunkProgress); a capture that meets its high
 * watermark afterwards does not find it read, and writes nothing for it.
 */
export async function pruneChunks(db: Db, olderThanHours: number): Promise<number> {
  const r = await db.query(
    `delete from pipeline.capture_chunks where coalesce(done_at, created_at) < now() - make_interval(hours => $1)`,
    [olderThanHours],
  );
  return r.rowCount ?? 0;
}
