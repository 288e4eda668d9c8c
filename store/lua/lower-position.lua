-- A rewind's lowering of a partition's position (activities/drain/divergence.ts): after the drain
-- rewound its cursor to the lowest partition's position (the others kept writes past it: a cluster
-- node failed over to a replica behind), a partition past that position takes it, and forgets what
-- its last chunk delivered (FIELD.appliedChunk), so the next check finds it in step rather than
-- ahead by more than a chunk. Always safe: what it holds past the position is delivered again, and
-- every field's version and every counter's position skip what it already holds.
-- KEYS[1] the partition's pos
-- ARGV[1], ARGV[2], ARGV[3] the rewound cursor's last delivered position (batch, txid, id)
-- Returns 1 when lowered, 0 when the partition was not past it.
--- @include "includes/position"
local s = redis.call('HMGET', KEYS[1], FIELD.appliedBatch, FIELD.appliedTxid, FIELD.appliedId)
if not s[1] or comparePositions(s[1], s[2], s[3], ARGV[1], ARGV[2], ARGV[3]) <= 0 then return 0 end
redis.call('HSET', KEYS[1], FIELD.appliedBatch, ARGV[1], FIELD.appliedTxid, ARGV[2], FIELD.appliedId, ARGV[3])
redis.call('HDEL', KEYS[1], FIELD.appliedChunk)
return 1
