-- Deletes a field tombstone only if the field still holds exactly it (the tombstone sweep:
-- activities/compaction/sweep-tombstones.ts).
-- KEYS[1] the hash
-- ARGV[1] the field, ARGV[2] the tombstone it held when the sweep read it
-- Returns 1 deleted, 0 the field changed since.
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
