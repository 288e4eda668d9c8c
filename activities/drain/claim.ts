/** The first step of a drain batch: may this run go on, and is the drain frozen? */
import pg from 'pg';
import type { BeginResult } from '../../db/transaction';
import { drainLockName, liftExpiredFreeze, passStartOf, passStartSql, type ConsumerCursor } from '../../outbox';
import { emptyResult, type DrainBatchResult, type ShardDeps, type Target } from './types';

/**
 * The BEGIN of a drain pass with the shard's lock and, in a statement after the lock's, the pass
 * start (outbox/pass-start.ts): one simple query, one round trip.
 */
export const claimBeginSql = (consumer: string, lease: string, logical: boolean): string =>
  `begin; select pg_try_advisory_xact_lock(hashtext(${pg.escapeLiteral(drainLockName(consumer))})) as ok; ${passStartSql(consumer, lease, logical)}`;

/** The statements claimBeginSql holds: its results are the last this many of a reply. */
export const CLAIM_BEGIN_STATEMENTS = 3;

/**
 * The shard's lock (hard mutual exclusion for the apply: held until commit or rollback, released
 * by the server if this process dies; it assigns no transaction id), taken by claimBeginSql with the
 * transaction's BEGIN, and what the statement after it read: the shard layout, the lease, the cursor
 * and a new snapshot. Says whether this run may go on, and the freeze snapshot if DRAIN_SHARDS is
 * changing.
 */
export async function claimDrain(
  deps: ShardDeps,
  client: pg.PoolClient,
  owner: string,
  begun: BeginResult,
): Promise<
  | { kind: 'refused'; result: DrainBatchResult }
  | {
      kind: 'claimed';
      frozen: Target | null;
      cursor: ConsumerCursor;
      /** The lease has less than half its TTL left (or lapsed): a pass that writes nothing else renews it. */
      leaseDue: boolean;
      now: { snap: string; at: number; dbNowMs: number };
    }
> {
  const [, lock, start] = begun as pg.QueryResult[];
  const { layout, holder, leaseLeftMs, cursor, now } = passStartOf(start!);
  const leaseDue = leaseLeftMs === null || leaseLeftMs < deps.config.DRAIN_LEASE_TTL_MS / 2;
  if (!lock!.rows[0].ok) return { kind: 'refused', result: { outcome: 'busy', ...emptyResult(cursor) } };
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
    return { kind: 'claimed', frozen: null, cursor, now, leaseDue };
  }
  return { kind: 'claimed', frozen: layout.frozen, cursor, now, leaseDue };
}
