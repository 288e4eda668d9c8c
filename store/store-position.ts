/**
 * The store's own position ({p}pos): what the online store holds, written by Redis itself in the
 * same Lua calls as the changes, so it survives (or is lost) together with them: a restart from an
 * RDB or AOF file, or a failover to a replica, rolls back both, never one without the other.
 *
 *   claim:  cb  the batch claimed last; cf its cursor snapshot ("from"), ct its target snapshot,
 *               cat the target's time. A batch is claimed before its first row is applied, so a
 *               retry after a crash between the Redis apply and the cursor commit re-reads exactly
 *               the rows it may have applied (a newer target could put a transaction that was
 *               open at the first attempt, with a lower txid, ahead of load deltas already counted,
 *               and the counters' position guard would skip it).
 *   applied: lb lt li  the delivery position (batch, txid, id) of the last row applied, written by
 *               the last apply call of each chunk.
 *
 * Every drain call compares the applied position with PostgreSQL's (the cursor's `last`):
 *   equal, or ahead only inside the batch in progress, which the store claimed (a crash before the
 *           cursor commit): in sync;
 *   behind: Redis lost writes the cursor had counted (restored from an older file, failed over to a
 *           lagging replica): the drain rewinds its cursor to the store's own position and
 *           re-delivers from there (reads stay stale: the watermark came back old with the data);
 *   ahead:  PostgreSQL lost commits the store had seen (restored from a backup, failed over to an
 *           asynchronous standby; transaction ids may be handed out again): the store is ahead
 *           of the cursor's last row outside the claimed batch, or has claimed a batch the cursor
 *           has not reached, or the claimed target is newer than any snapshot PostgreSQL now
 *           hands out. The store is rebuilt.
 * A store with no position (new, emptied) takes PostgreSQL's; the epoch check then backfills it.
 */
import type { Redis } from 'ioredis';
import type { StoreKeys } from './keys';

export interface DeliveryPosition {
  batch: string;
  txid: string;
  id: string;
}

export const NO_POSITION: DeliveryPosition = { batch: '0', txid: '0', id: '0' };

export interface StorePosition {
  claimed: { batch: string; from: string; target: string; at: number } | null;
  applied: DeliveryPosition | null;
}

export type PositionCheck =
  { status: 'ok'; target: { snap: string; at: number } } | { status: 'behind' | 'ahead'; store: StorePosition };

// KEYS[1] pos. ARGV: 1 cursor batch, 2 cursor from, 3 proposed target ('' mid-batch), 4 its time,
// 5-7 PostgreSQL's last delivered position (batch, txid, id).
const CHECK_LUA = `
local f = redis.call('HMGET', KEYS[1], 'cb', 'cf', 'ct', 'cat', 'lb', 'lt', 'li')
local function state(s) return { s, f[1] or '', f[2] or '', f[3] or '', f[4] or '', f[5] or '', f[6] or '', f[7] or '' } end
local pb, pt, pi = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
if not f[5] then
  -- a store with no position (new, or emptied): it starts from PostgreSQL's
  redis.call('HSET', KEYS[1], 'lb', ARGV[5], 'lt', ARGV[6], 'li', ARGV[7])
  f[5], f[6], f[7] = ARGV[5], ARGV[6], ARGV[7]
end
local sb, st, si = tonumber(f[5]), tonumber(f[6]), tonumber(f[7])
local c = 0
if sb ~= pb then c = sb < pb and -1 or 1
elseif st ~= pt then c = st < pt and -1 or 1
elseif si ~= pi then c = si < pi and -1 or 1 end
if c < 0 then return state('behind') end
-- The store may be ahead only inside the batch in progress, which it must have claimed (a crash
-- between its Redis apply and its cursor commit). A claim of a batch the cursor has not reached
-- means PostgreSQL lost commits the store had seen.
local cb = tonumber(f[1] or '0')
if c > 0 and (f[5] ~= ARGV[1] or f[1] ~= ARGV[1]) then return state('ahead') end
if cb > tonumber(ARGV[1]) then return state('ahead') end
if ARGV[3] == '' then return { 'ok', '', '' } end
if f[1] == ARGV[1] and f[3] then
  if f[2] ~= ARGV[2] then return state('ahead') end
  return { 'ok', f[3], f[4] }
end
redis.call('HSET', KEYS[1], 'cb', ARGV[1], 'cf', ARGV[2], 'ct', ARGV[3], 'cat', ARGV[4])
return { 'ok', ARGV[3], ARGV[4] }
`;

type WithCheck = Redis & { fbCheckPosition(numKeys: number, ...args: string[]): Promise<string[]> };

function parseState(r: string[]): StorePosition {
  const [, cb, cf, ct, cat, lb, lt, li] = r;
  return {
    claimed: cb && ct ? { batch: cb, from: cf, target: ct, at: Number(cat) } : null,
    applied: lb ? { batch: lb, txid: lt, id: li } : null,
  };
}

/**
 * Compares the store's applied position with PostgreSQL's `last` and, for a new batch (`proposed`
 * given), claims it, or returns the target an earlier attempt of the same batch claimed.
 */
export async function checkStorePosition(
  redis: Redis,
  keys: StoreKeys,
  input: { batch: string; from: string; proposed: { snap: string; at: number } | null; last: DeliveryPosition },
): Promise<PositionCheck> {
  const r = redis as WithCheck;
  if (typeof r.fbCheckPosition !== 'function') redis.defineCommand('fbCheckPosition', { lua: CHECK_LUA });
  const reply = await r.fbCheckPosition(
    1,
    keys.pos,
    input.batch,
    input.from,
    input.proposed?.snap ?? '',
    String(input.proposed?.at ?? ''),
    input.last.batch,
    input.last.txid,
    input.last.id,
  );
  if (reply[0] === 'ok') return { status: 'ok', target: { snap: reply[1], at: Number(reply[2]) } };
  return { status: reply[0] as 'behind' | 'ahead', store: parseState(reply) };
}

export async function readStorePosition(redis: Redis, keys: StoreKeys): Promise<StorePosition> {
  const f = await redis.hmget(keys.pos, 'cb', 'cf', 'ct', 'cat', 'lb', 'lt', 'li');
  return parseState(['', ...f.map((v) => v ?? '')]);
}

/**
 * After a rebuild: the store starts again from PostgreSQL's position, with no claim, or with the
 * claim of the batch in progress kept (a rebuild in the middle of a batch: TRUNCATE).
 */
export async function resetStorePosition(
  redis: Redis,
  keys: StoreKeys,
  last: DeliveryPosition,
  claim: StorePosition['claimed'] = null,
): Promise<void> {
  const fields = ['lb', last.batch, 'lt', last.txid, 'li', last.id];
  if (claim) fields.push('cb', claim.batch, 'cf', claim.from, 'ct', claim.target, 'cat', String(claim.at));
  await redis
    .multi()
    .del(keys.pos)
    .hset(keys.pos, ...fields)
    .exec();
}

/** ARGV the apply script takes to record the applied position in the same call as the changes. */
export const positionArgs = (p: DeliveryPosition | null): string[] => (p ? [p.batch, p.txid, p.id] : ['', '', '']);
