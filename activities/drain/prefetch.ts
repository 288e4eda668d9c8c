/**
 * Working off a backlog, the drain reads the next chunk on another connection while the current
 * one is applied to Redis (PostgreSQL and Redis then use both cores). The rows of a chunk are
 * fixed by (cursor snapshot, target, position), so a prefetched chunk is exactly what the next
 * call would read; it is used only if that call's cursor is exactly the one it was read for.
 */
import type pg from 'pg';
import type { OutboxRow } from '../../features/from-source';
import { readDelta, type Position } from '../../outbox';

interface Prefetch {
  key: string;
  limit: number;
  rows: Promise<OutboxRow[]>;
}

/**
 * One prefetched chunk per database (pool: snapshot texts are cluster-wide, databases are not) and
 * consumer (drain shards in one worker share the pool; each keeps its own).
 */
const prefetched = new WeakMap<pg.Pool, Map<string, Prefetch>>();

const prefetchKey = (consumer: string, from: string, to: string, after: Position) =>
  `${consumer} ${from} ${to} ${after.txid}:${after.id}`;

export function prefetch(
  pool: pg.Pool,
  consumer: string,
  input: { from: string; to: string; after: Position; limit: number; routes: number[] | null },
): void {
  const rows = readDelta(pool, input);
  rows.catch(() => undefined); // a failed prefetch is just not used
  let byConsumer = prefetched.get(pool);
  if (!byConsumer) prefetched.set(pool, (byConsumer = new Map()));
  byConsumer.set(consumer, { key: prefetchKey(consumer, input.from, input.to, input.after), limit: input.limit, rows });
}

export async function takePrefetched(
  pool: pg.Pool,
  consumer: string,
  from: string,
  to: string,
  after: Position,
): Promise<{ rows: OutboxRow[]; limit: number } | null> {
  const p = prefetched.get(pool)?.get(consumer);
  prefetched.get(pool)?.delete(consumer);
  if (!p || p.key !== prefetchKey(consumer, from, to, after)) return null;
  try {
    return { rows: await p.rows, limit: p.limit };
  } catch {
    return null;
  }
}
