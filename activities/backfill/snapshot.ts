/**
 * Reading the source at a snapshot, and remembering that snapshot in the store so that changes
 * can be compared against values read from it (see store/apply.ts, "s<k>" versions).
 */
import { SCRIPTS } from '../../store/scripts';
import { onEachNode, StoreRedis } from '../../store/redis-client';
import type pg from 'pg';
import { withTransaction } from '../../db/transaction';
import type { StoreKeys } from '../../store/keys';

export interface Snapshot {
  /** pg_current_snapshot() as text: xmin:xmax:xip,… */
  text: string;
  xmin: bigint;
}

/**
 * Where the trigger capture's backfill and verify take their snapshots: the primary, always. They
 * compare the outbox's txids against their snapshot, so it must be of the primary's transactions
 * and list the ones running:
 *  - a hot standby's pg_current_snapshot() lists none (in recovery PostgreSQL keeps them apart,
 *    and the function copies only the list it leaves empty): a transaction still open on the
 *    primary reads as seen, a backfill tags its values as including that change, and the drain
 *    skips the change when it commits;
 *  - any other server (a logical subscriber, a restored copy) counts transactions of its own.
 * `replicaSet`: REPLICA_DATABASE_URL was given, and is not used for these reads (the worker warns).
 * Capture from the WAL reads a source's replica between watermarks (capture/watermark-read.ts)
 * and the replica pool stays as configured there.
 */
export function snapshotSource(
  captureMode: 'trigger' | 'logical',
  primary: pg.Pool,
  replica: pg.Pool,
): { pool: pg.Pool; replicaSet: boolean } {
  if (captureMode !== 'trigger') return { pool: replica, replicaSet: false };
  return { pool: primary, replicaSet: replica !== primary };
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

/**
 * Stores the snapshot's descriptor in every partition and returns its version tag "s<k>". The
 * number comes from one counter ({p}snapseq) on one node; if that node failed over and the counter
 * went back, a number may already name another snapshot in some partition: that must never be
 * overwritten (values tagged with it would be compared against the wrong snapshot), so each
 * partition takes the descriptor only if it has none under that number, and on a clash the counter
 * jumps past every number in use and the next one is taken.
 */
export async function registerSnapshot(redis: StoreRedis, keys: StoreKeys, snap: Snapshot): Promise<string> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const k = String(await redis.incr(keys.snapSeq));
    const replies = await onEachNode(
      redis,
      keys.partitions,
      (p) => p.snaps,
      (pipeline, p) => void pipeline.hsetnx(p.snaps, k, snap.text),
    );
    const clash = replies.some((set) => set !== 1);
    if (!clash) return `s${k}`;
    const used = await onEachNode(
      redis,
      keys.partitions,
      (p) => p.snaps,
      (pipeline, p) => void pipeline.hkeys(p.snaps),
    );
    const highest = Math.max(0, ...used.flatMap((ks) => (ks as string[]).map(Number)));
    await redis.eval(SCRIPTS.raiseCounter.lua, 1, keys.snapSeq, String(highest));
  }
  throw new Error('could not register a backfill snapshot: the snapshot counter keeps clashing with numbers in use');
}
