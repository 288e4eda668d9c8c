/**
 * Where `ops replay` starts, from what an operator has at hand. A replay re-applies the retained
 * outbox rows after a position (txid, id) in (txid, id) order (replay-range.ts). Operators see
 * snapshots, not positions: `ops status` prints "applied through snapshot 3531875:3531875:", so
 * `--from` takes that text too, and `--since` takes a time.
 *
 *   --from start               every retained change
 *   --from TXID:ID             the changes after that outbox row (ops status prints one while a
 *                              batch is in progress: "at TXID:ID")
 *   --from XMIN:XMAX:XIP,…     a pg_snapshot as `ops status` prints it: every change that snapshot
 *                              did not see (transactions in its xip list or from XMAX on). In
 *                              (txid, id) order they all come after the position (XMIN - 1, max id),
 *                              which is where the replay starts; the changes of transactions
 *                              between XMIN and XMAX that the snapshot did see are replayed too.
 *                              That is harmless: a replay writes each value with its own version,
 *                              so re-applying an applied change writes what the store has.
 *   --since TIME               from the first retained change (in (txid, id) order) written at or
 *                              after TIME: an ISO time (UTC unless it names a zone) or a duration
 *                              back from now (90s, 30m, 1h, 2d, 1h30m)
 */
import type pg from 'pg';
import { parseSnapshot } from '../../db/pg-snapshot';
import type { Position } from '../../outbox';

/** The largest outbox id (bigint): (txid, MAX_ID) is after every row of txid. */
export const MAX_ID = '9223372036854775807';
/** The largest txid (xid8, unsigned 64 bits). */
const MAX_TXID = 2n ** 64n - 1n;

export interface ReplayStart {
  position: Position;
  /** How the operator named it, for messages and the Web UI's summary. */
  described: string;
}

/** `--from`: "start", TXID:ID or a snapshot text; throws a message that says what is accepted. */
export function parseReplayFrom(text: string): ReplayStart {
  if (text === 'start') return { position: { txid: '0', id: '0' }, described: 'the start of the outbox' };
  const pair = /^(\d{1,20}):(\d{1,19})$/.exec(text);
  if (pair) {
    // the columns' ranges (xid8, bigint): beyond them PostgreSQL fails the replay's query on every retry
    if (BigInt(pair[1]) > MAX_TXID || BigInt(pair[2]) > BigInt(MAX_ID))
      throw new Error(`not a position: ${text} (a txid is at most ${MAX_TXID}, an outbox id at most ${MAX_ID})`);
    return { position: { txid: pair[1], id: pair[2] }, described: `outbox position ${text}` };
  }
  if (/^\d{1,20}:\d{1,20}:[\d,]*$/.test(text)) {
    const s = parseSnapshot(text); // throws on an inconsistent one (xmin > xmax, xip outside)
    if (s.xmax > MAX_TXID) throw new Error(`not a snapshot: ${text} (a txid is at most ${MAX_TXID})`);
    const before = s.xmin > 0n ? s.xmin - 1n : 0n;
    return { position: { txid: before.toString(), id: MAX_ID }, described: `snapshot ${text}` };
  }
  throw new Error(
    `not a position: ${JSON.stringify(text)} (expected a snapshot XMIN:XMAX:XIP as \`ops status\` prints it, TXID:ID, or "start")`,
  );
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(?:\d+(?:ms|s|m|h|d))+$/;
const ISO = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

/** `--since`: an ISO time or a duration back from `now`; never in the future. */
export function parseSince(text: string, now = Date.now()): Date {
  let at: number;
  if (DURATION.test(text)) {
    at = now;
    for (const [, n, unit] of text.matchAll(/(\d+)(ms|s|m|h|d)/g)) at -= Number(n) * UNIT_MS[unit];
  } else {
    const m = ISO.exec(text);
    if (!m)
      throw new Error(
        `not a time: ${JSON.stringify(text)} (expected an ISO time like 2026-12-04T13:05:00Z or a duration back from now like 30m, 1h, 2d, 1h30m)`,
      );
    // A time without a zone is UTC, whatever the operator's machine says.
    const withZone = text.length > 10 && !m[1] ? `${text.replace(' ', 'T')}Z` : text.replace(' ', 'T');
    at = Date.parse(withZone);
    if (!Number.isFinite(at)) throw new Error(`not a valid time: ${JSON.stringify(text)}`);
  }
  if (at > now) throw new Error(`--since ${text} is in the future`);
  return new Date(at);
}

/**
 * How much earlier than `since` the drain snapshot bounding the search must have been applied: its
 * applied_at is the worker's clock, created_at the database's; this covers any skew between them.
 */
export const SINCE_BOUND_MARGIN_MS = 5 * 60_000;

/**
 * The position just before the first retained change written at or after `since`, and the time
 * of the oldest retained change (the replay cannot reach further back: compaction removed the
 * rest). Null position: no retained change was written since then.
 *
 * The search reads the (txid, id) index from a lower bound, not from the outbox's start (with 48 h
 * retained, that was every change of the 47 h before a `--since 1h`): the xmin of a drain snapshot
 * applied before `since`. Every transaction below that xmin had ended when the snapshot was taken,
 * so it wrote all its changes before `since`; a long transaction still open then is at or above
 * it, and is found. Without such a snapshot (the log is pruned with the outbox) the read starts at
 * the beginning, as does a bound pinned by a transaction held open for hours: slower, still exact.
 */
export async function positionSince(
  db: pg.Pool,
  since: Date,
): Promise<{ position: Position | null; oldestRetained: Date | null }> {
  const bound = await db.query<{ xmin: string }>(
    `select pg_snapshot_xmin(snap)::text as xmin from pipeline.drain_snapshots
      where applied_at <= $1 order by applied_at desc limit 1`,
    [new Date(since.getTime() - SINCE_BOUND_MARGIN_MS).toISOString()],
  );
  // `o.txid`, not `txid`: ORDER BY takes a bare name as the output column, here the text of the
  // txid, and "1000" sorts before "999" (the replay would skip every txid of fewer digits).
  const first = await db.query<{ txid: string; id: string }>(
    `select o.txid::text as txid, o.id::text as id from pipeline.outbox o
      where o.txid >= $2::xid8 and o.created_at >= $1 order by o.txid, o.id limit 1`,
    [since.toISOString(), bound.rows[0]?.xmin ?? '0'],
  );
  // the first row in (txid, id) order: an index read, and as old as any retained row but for seconds
  const oldest = await db.query<{ at: Date }>(`select created_at as at from pipeline.outbox order by txid, id limit 1`);
  const row = first.rows[0];
  return {
    // (txid, id - 1): from that row on (ids are positive); rows of txid before it were written earlier
    position: row ? { txid: row.txid, id: (BigInt(row.id) - 1n).toString() } : null,
    oldestRetained: oldest.rows[0]?.at ?? null,
  };
}
