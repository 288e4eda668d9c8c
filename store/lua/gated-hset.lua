-- Writes the partition's watermark fields only while it is complete and holds what the
-- watermark speaks for (store/watermark.ts).
-- KEYS[1] meta, KEYS[2] epoch, KEYS[3] pos
-- ARGV[1], ARGV[2], ARGV[3] the delivery position the partition must hold at least ('' : no check),
-- ARGV[4]    how long ago (ms) the watermark's caughtUpAt was, now ('' : no caughtUpAt written): the
--            caught-up time is also written on this server's clock, as TIME minus that age (read
--            by store/lua/read-badges.lua, so the lag a read measures takes one clock), then
--            field, value, … to write into meta
-- Returns 1 written, 0 no epoch (the partition is incomplete), -1 the partition is below the
-- position (it lost writes: the watermark must not claim them).
--- @include "includes/position"
--- @include "includes/clock"
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
if ARGV[1] ~= '' and partitionBelow(KEYS[3], ARGV[1], ARGV[2], ARGV[3]) then return -1 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], FIELD.caughtUpClock, string.format('%d', serverNowMs() - tonumber(ARGV[4])))
end
return 1
