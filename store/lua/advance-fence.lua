-- Moves the partition's deletion fence forward (store/fence.ts), never back.
-- KEYS[1] fence
-- ARGV[1] the snapshot "xmin:xmax:xip" to move it to
-- Returns 1 moved, 0 already further (by xmax).
local cur = redis.call('GET', KEYS[1])
if cur then
  local curMax = tonumber(string.match(cur, '^%d+:(%d+):'))
  local newMax = tonumber(string.match(ARGV[1], '^%d+:(%d+):'))
  if curMax and newMax and newMax < curMax then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
