-- A drain re-split's rewrite of a partition's position (activities/drain/reshard.ts), only if the
-- partition still holds what its old shard applied (or this split's position, written by an earlier
-- attempt) and no rebuild or TRUNCATE emptying marks it: checked and written in one call, so a
-- Redis that lost writes since the split's plan read the position (a failover to a replica behind
-- it, a restart from an older file) is never given the new position over data it lacks. Such a
-- partition is given it marked for a rebuild instead, and without its epoch: reads of it are stale
-- from this call on, and its new shard's first position check rebuilds it (a rebuild here, inside
-- the switch's transaction that holds every shard's lock, could outlast the activity's timeout).
-- KEYS[1] the partition's pos, KEYS[2] its epoch
-- ARGV[1..3] the old shard's last delivered position (batch, txid, id)
-- ARGV[4..6] the split's position
-- Returns 1 when written as it was, 0 when written marked for a rebuild.
local s = redis.call('HMGET', KEYS[1], FIELD.appliedBatch, FIELD.appliedTxid, FIELD.appliedId,
  FIELD.rebuilding, FIELD.truncatePending)
local function is(b, t, i) return s[1] == b and s[2] == t and s[3] == i end
local holds = s[1] and not s[4] and not s[5] and (is(ARGV[1], ARGV[2], ARGV[3]) or is(ARGV[4], ARGV[5], ARGV[6]))
if not holds then redis.call('DEL', KEYS[2]) end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], FIELD.appliedBatch, ARGV[4], FIELD.appliedTxid, ARGV[5], FIELD.appliedId, ARGV[6])
if holds then return 1 end
redis.call('HSET', KEYS[1], FIELD.rebuilding, '1')
return 0
