-- A partition's freshness watermark (store/watermark.ts, readWatermark), read-only, with this
-- server's clock: the lag is measured as the read script measures it, on one clock.
-- KEYS[1] the partition's meta; ARGV[1] none (no argument)
-- Returns { sourceMs, appliedAt, caughtUpAt, caughtUpClock (each false when missing), TIME in ms }
local w = redis.call('HMGET', KEYS[1], FIELD.sourceMs, FIELD.appliedAt, FIELD.caughtUpAt, FIELD.caughtUpClock)
local t = redis.call('TIME')
w[5] = t[1] * 1000 + math.floor(t[2] / 1000)
return w
