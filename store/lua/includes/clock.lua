-- This server's clock, the one the freshness lag is measured on (store/watermark.ts).

-- Now, by TIME, in whole milliseconds since the epoch.
local function serverNowMs()
  local t = redis.call('TIME')
  return t[1] * 1000 + math.floor(t[2] / 1000)
end
