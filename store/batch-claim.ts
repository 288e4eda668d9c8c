/**
 * The drain's batch claim, kept in the store itself ({p}pos): before a batch's first row is
 * applied, its number and target snapshot are recorded here, in Redis, in the same order as the
 * applies that follow. A batch retried after a crash between its Redis apply and its cursor commit
 * finds its claim and re-reads exactly the rows it applied before: same cursor snapshot, same
 * target. Re-reading with a newer target would be wrong: a transaction that was open at the first
 * attempt (lower txid) could join the batch ahead of load deltas already counted, and the counters'
 * position guard would skip it.
 *
 * Redis keeps the claim consistent with the applies it guards: a restore from an RDB file or an
 * AOF, or a failover to a replica, loses a suffix of both together, never the claim alone.
 */
import type { Redis } from 'ioredis';
import type { StoreKeys } from './keys';

const CLAIM_LUA = `
local b = redis.call('HGET', KEYS[1], 'batch')
if b == ARGV[1] then
  local t = redis.call('HMGET', KEYS[1], 'target', 'at')
  if t[1] then return t end
end
redis.call('HSET', KEYS[1], 'batch', ARGV[1], 'target', ARGV[2], 'at', ARGV[3])
return { ARGV[2], ARGV[3] }
`;

type WithClaim = Redis & { fbClaimBatch(numKeys: number, ...args: string[]): Promise<[string, string]> };

export interface BatchTarget {
  /** pg_snapshot text of the batch's target. */
  snap: string;
  /** When it was taken (ms since epoch). */
  at: number;
}

/** Claims `proposed` as batch `batch`'s target, or returns the target an earlier attempt claimed. */
export async function claimBatchTarget(redis: Redis, keys: StoreKeys, batch: string, proposed: BatchTarget): Promise<BatchTarget> {
  const r = redis as WithClaim;
  if (typeof r.fbClaimBatch !== 'function') redis.defineCommand('fbClaimBatch', { lua: CLAIM_LUA });
  const [snap, at] = await r.fbClaimBatch(1, keys.pos, batch, proposed.snap, String(proposed.at));
  return { snap, at: Number(at) };
}

/** The batch claimed last, if any (backfill checks its snapshot covers it). */
export async function readBatchClaim(redis: Redis, keys: StoreKeys): Promise<{ batch: string; snap: string } | null> {
  const [batch, snap] = await redis.hmget(keys.pos, 'batch', 'target');
  return batch && snap ? { batch, snap } : null;
}
