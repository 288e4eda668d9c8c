-- The deletion fence (store/fence.ts): moved forward, never back.
--
-- FENCE_PENDING: a store emptied with no drain position to take a fence from (store/rebuild.ts).
-- Every deletion it held is forgotten and no snapshot is yet known to see them, so the apply script
-- refuses every write a fence would judge (fills, replays and retries into absent fields) until the
-- drain's next position check (check-position.lua) sets the fence from the cursor's snapshot.
local FENCE_PENDING = 'pending'

-- Moves the fence at key to snapshot s ("xmin:xmax:xip") unless it is already further. Returns
-- 1 moved, 0 already further.
--
-- Snapshots of one database come in time order: a later one has an xmax at least as high, and
-- with the same xmax, in-progress transactions only a subset of the earlier one's (some ended in
-- between). So with the same xmax the move is taken only when its in-progress list is within the
-- fence's: an older snapshot written late (a sweep's, say, after a rebuild's) must not make the
-- fence stop seeing deletions the newer one saw. A pending fence is replaced by any snapshot.
local function advanceFenceTo(key, s)
  local cur = redis.call('GET', key)
  if cur and cur ~= FENCE_PENDING then
    local curMax, curXip = string.match(cur, '^%d+:(%d+):(.*)$')
    local newMax, newXip = string.match(s, '^%d+:(%d+):(.*)$')
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
  redis.call('SET', key, s)
  return 1
end
