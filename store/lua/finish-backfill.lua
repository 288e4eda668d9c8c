-- Marks a partition complete at the end of a backfill, unless it was rebuilt meanwhile (its
-- backfill marker is gone or another's) or lost writes of the backfill (its last step short of
-- the backfill's: store/lua/backfill-step.lua): activities/backfill/backfill.ts.
-- KEYS[1] epoch, KEYS[2] backfill marker, KEYS[3] backfill step
-- ARGV[1] the epoch value, ARGV[2] this backfill's marker ('' : a backfill started without one),
-- ARGV[3] the backfill's steps ('' : a backfill that does not count them)
-- Returns 1 marked complete, 0 left incomplete.
-- A retry of a finish that got this far (its worker killed before it cleared the lost sources,
-- say) finds its own epoch, and the marker gone: complete, as the first attempt left it. A rebuild
-- since has deleted the epoch with the marker (store/rebuild.ts), or is about to: then the
-- partition ends without an epoch whatever this answers, and the drain starts another backfill.
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
if ARGV[2] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
if ARGV[3] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3])
return 1
