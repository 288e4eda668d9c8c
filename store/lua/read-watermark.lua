-- A partition's freshness watermark (store/watermark.ts, readWatermark), read-only, with this
-- server's clock: the lag is measured as the read script measures it, on one clock.
-- KEYS[1] the partition's meta; ARGV[1] none (no argument)
-- Returns { sourceMs, appliedAt, caughtUpAt, caughtUpClock (each false when missing), TIME in ms }
--- @include "includes/clock"
local w = redis.call('HMGET', KEYS[1], FIELD.sourceMs, FIELD.appliedAt, FIELD.caughtUpAt, FIELD.caughtUpClock)
w[5] = serverNowMs()
return w
