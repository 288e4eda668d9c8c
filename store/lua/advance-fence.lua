-- Moves the partition's deletion fence forward (store/fence.ts), never back.
-- KEYS[1] fence
-- ARGV[1] the snapshot "xmin:xmax:xip" to move it to
-- Returns 1 moved, 0 already further.
--
-- Snapshots of one database come in time order: a later one has an xmax at least as high, and
-- with the same xmax, in-progress transactions only a subset of the earlier one's (some ended in
-- between). So with the same xmax the move is taken only when its in-progress list is within the
-- fence's: an older snapshot written late (a sweep's, say, after a rebuild's) must not make the
-- fence stop seeing deletions the newer one saw.
local cur = redis.call('GET', KEYS[1])
if cur then
  local curMax, curXip = string.match(cur, '^%d+:(%d+):(.*)$')
  local newMax, newXip = string.match(ARGV[1], '^%d+:(%d+):(.*)$')
  curMax, newMax = tonumber(curMax), tonumber(newMax)
  if curMax and newMax then
    if newMax < curMax then return 0 end
    if newMax == curMax then
      local running = {}
      for x in string.gmatch(curXip, '%d+') do running[x] = true end
      for x in string.gmatch(newXip, '%d+') do
        if not running[x] then return 0 end
      end
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
