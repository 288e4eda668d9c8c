/**
 * Reading the source at a snapshot, and remembering that snapshot in the store so that changes
 * can be compared against values read from it (see store/apply.ts, "s<k>" versions).
 */
import { pipelineByNode, StoreRedis } from '../../store/redis-client';
import type pg from 'pg';
import { withTransaction } from '../../db/transaction';
import type { StoreKeys } from '../../store/keys';

export interface Snapshot {
  /** pg_current_snapshot() as text: xmin:xmax:xip,… */
  text: string;
  xmin: bigint;
}

/** Runs `fn` inside a REPEATABLE READ, READ ONLY transaction (one snapshot for all its reads). */
export async function withSnapshot<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient, snap: Snapshot) => Promise<T>,
): Promise<T> {
  return withTransaction(
    pool,
    async (client) => {
      const r = await client.query(
        `select pg_current_snapshot()::text as s, pg_snapshot_xmin(pg_current_snapshot())::text as xmin`,
      );
      return fn(client, { text: r.rows[0].s, xmin: BigInt(r.rows[0].xmin) });
    },
    'begin isolation level repeatable read read only',
  );
}

/** Stores the snapshot's descriptor and returns its version tag "s<k>". */
export async function registerSnapshot(redis: StoreRedis, keys: StoreKeys, snap: Snapshot): Promise<string> {
  const k = await redis.incr(keys.snapSeq);
  // every partition: a value is compared with the snapshot of its own partition's descriptor
  const replies = await pipelineByNode(
    redis,
    keys.partitions,
    (p) => p.snaps,
    (pipeline, p) => void pipeline.hset(p.snaps, String(k), snap.text),
  );
  for (const [err] of replies) if (err) throw err;
  return `s${k}`;
}
