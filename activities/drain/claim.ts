/** The first step of a drain batch: may this run go on, and is the drain frozen? */
import type pg from 'pg';
import { drainLockName, liftExpiredFreeze, readCursor, readPassStart, type ConsumerCursor } from '../../outbox';
import { emptyResult, type DrainBatchResult, type ShardDeps, type Target } from './types';

/**
 * The shard's lock (hard mutual exclusion for the apply: held until commit or rollback, released
 * by the server if this process dies; it assigns no transaction id), then in one statement after
 * it (outbox/pass-start.ts) the shard layout, the lease, the cursor and a new snapshot. Says whether
 * this run may go on, and the freeze snapshot if DRAIN_SHARDS is changing.
 */
export async function claimDrain(
  deps: ShardDeps,
  client: pg.PoolClient,
  consumer: string,
  owner: string,
): Promise<
  | { kind: 'refused'; result: DrainBatchResult }
  | { kind: 'claimed'; frozen: Target | null; cursor: ConsumerCursor; now: { snap: string; at: number } }
> {
  const lock = await client.query('select pg_try_advisory_xact_lock(hashtext($1)) as ok', [drainLockName(consumer)]);
  if (!lock.rows[0].ok)
    return { kind: 'refused', result: { outcome: 'busy', ...emptyResult(await readCursor(client, consumer)) } };
  // The layout is read once the lock is held, by a statement of its own: its snapshot then sees a
  // freeze or a re-split that committed before the lock was free (a statement's snapshot is taken
  // before the statement runs, and a commit is visible before its locks are released).
  const { layout, holder, cursor, now } = await readPassStart(client, consumer, deps.shard.lease);
  if (layout.shards !== deps.shard.count)
    return { kind: 'refused', result: { outcome: 'retired', ...emptyResult(cursor) } };
  if (deps.shard.count > 1 && layout.partitions !== deps.allKeys.partitions.length)
    throw new Error(
      `the outbox routes rows by ${layout.partitions} store partition(s) but this worker's STORE_PARTITIONS is ${deps.allKeys.partitions.length}: with ${layout.shards} drain shards, every worker must use the same STORE_PARTITIONS (docs/operations.md, "Drain shards")`,
    );
  if (holder !== null && holder !== owner)
    return { kind: 'refused', result: { outcome: 'lease-lost', ...emptyResult(cursor), holder } };
  // A freeze whose re-split run is gone (its lease ran out) would stop every shard for good.
  if (layout.frozen?.expired && !layout.frozen.splitting && (await liftExpiredFreeze(client))) {
    deps.log?.(
      'warn',
      `lifted the drain freeze of a re-split that is gone (${layout.frozen.owner ?? 'no owner recorded'}; its lease ran out): the drain goes on with ${layout.shards} shard(s)`,
    );
    return { kind: 'claimed', frozen: null, cursor, now };
  }
  return { kind: 'claimed', frozen: layout.frozen, cursor, now };
}
