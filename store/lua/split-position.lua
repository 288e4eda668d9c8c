-- A drain re-split's rewrite of a partition's position (activities/drain/reshard.ts), only if the
-- partition still holds what its old shard applied (or this split's position, written by an earlier
-- attempt) and no rebuild or TRUNCATE emptying marks it: checked and written in one call, so a
-- Redis that lost writes since the split's plan read the position (a failover to a replica behind
-- it, a restart from an older file) is never given the new position over data it lacks.
-- KEYS[1] the partition's pos
-- ARGV[1..3] the old shard's last delivered position (batch, txid, id)
-- ARGV[4..6] the split's position
-- Returns 1 when written, 0 when refused (the caller rebuilds the partition).
local s = redis.call('HMGET', KEYS[1], FIELD.appliedBatch, FIELD.appliedTxid, FIELD.appliedId,
  FIELD.rebuilding, FIELD.truncatePending)
if s[4] or s[5] or not s[1] then return 0 end
local function is(b, t, i) return s[1] == b and s[2] == t and s[3] == i end
if not (is(ARGV[1], ARGV[2], ARGV[3]) or is(ARGV[4], ARGV[5], ARGV[6])) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], FIELD.appliedBatch, ARGV[4], FIELD.appliedTxid, ARGV[5], FIELD.appliedId, ARGV[6])
return 1
