-- Records that a partition holds the writes of one more step (a chunk, the loads) of a backfill,
-- after them: activities/backfill/backfill.ts. Steps are numbered 1, 2, … in the order the backfill
-- runs them, and a restored Redis (an older RDB file, a lost AOF tail, a replica promoted behind
-- its primary) holds a prefix of the writes it was sent, so a partition whose last step is k holds
-- the writes of steps 1..k. A step that finds its partition more than one step behind finds writes
-- of earlier steps lost: the backfill must start again, or it would mark an incomplete partition
-- complete.
-- KEYS[1] the partition's backfill marker, KEYS[2] its backfill step
-- ARGV[1] this backfill's marker, ARGV[2] the step
-- Returns 1 recorded (also when it already was: a retried step), 0 steps lost, -1 the partition
-- no longer carries this backfill (rebuilt meanwhile: the finish leaves it incomplete).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local step = tonumber(ARGV[2])
local recorded = redis.call('GET', KEYS[2])
-- No step beside the marker: an older version's worker marked the start (it counts no steps; the
-- marker's start writes the step first otherwise). Counting starts here.
if not recorded then redis.call('SET', KEYS[2], ARGV[2]) return 1 end
local last = tonumber(recorded)
if last == step then return 1 end
if last ~= step - 1 then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
return 1
