-- Deletes a field tombstone only if the field still holds exactly it, and only while the
-- partition holds every change the drain cursor counts as applied (the tombstone sweep:
-- activities/compaction/sweep-tombstones.ts).
-- KEYS[1] the hash, KEYS[2] its partition's pos
-- ARGV[1] the field, ARGV[2] the tombstone it held when the sweep read it, ARGV[3..5] the
--         partition's drain cursor's last delivered position (batch, txid, id)
-- Returns 1 deleted, 0 kept (the field changed since, or the partition is behind the cursor).
--
-- The sweep's bound says every change older than the tombstone was delivered, by PostgreSQL's
-- cursor. A partition behind that cursor (Redis back from an older file, not yet noticed by the
-- drain) has not applied them all: the drain's rewind re-delivers them, and the tombstone is what
-- refuses the deleted row's older image among them. Checked here, in the same call as the HDEL,
-- so a Redis restarted between the sweep's reads and its deletes is caught too.
--- @include "includes/position"
if partitionBelow(KEYS[2], ARGV[3], ARGV[4], ARGV[5]) then return 0 end
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
