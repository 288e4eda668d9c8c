-- Raises a counter to at least a value, never lowers it (the backfill snapshot counter:
-- activities/backfill/snapshot.ts).
-- KEYS[1] the counter
-- ARGV[1] the value it must reach
-- Returns nothing.
if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
