-- A partition's freshness watermark (store/watermark.ts, readWatermark), read-only, with this
-- server's clock: the lag is measured as the read script measures it, on one clock.
-- KEYS[1] the partition's meta, KEYS[2] its epoch; ARGV[1] none (no argument)
-- Returns { sourceMs, appliedAt, caughtUpAt, caughtUpClock (each false when missing), TIME in ms }.
-- A partition without its epoch (emptied, being refilled) has no caught-up time, as reads see it
-- (read-badges.lua): its lag is unknown, and every read of it says stale.
--- @include "includes/clock"
local w = redis.call('HMGET', KEYS[1], FIELD.sourceMs, FIELD.appliedAt, FIELD.caughtUpAt, FIELD.caughtUpClock)
if redis.call('EXISTS', KEYS[2]) == 0 then
  w[3], w[4] = false, false
end
w[5] = serverNowMs()
return w
