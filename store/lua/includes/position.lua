-- Delivery positions (batch, txid, id) and the partition's own position ({pp}pos).

-- -1, 0 or 1 as position a is before, at or after position b (each compared as numbers, in order).
local function comparePositions(ab, at, ai, bb, bt, bi)
  ab, at, ai, bb, bt, bi = tonumber(ab), tonumber(at), tonumber(ai), tonumber(bb), tonumber(bt), tonumber(bi)
  if ab ~= bb then return ab < bb and -1 or 1 end
  if at ~= bt then return at < bt and -1 or 1 end
  if ai ~= bi then return ai < bi and -1 or 1 end
  return 0
end

-- Does the partition whose position hash is posKey hold less than position (b, t, i)? One with no
-- position at all does: it lost everything.
local function partitionBelow(posKey, b, t, i)
  local s = redis.call('HMGET', posKey, FIELD.appliedBatch, FIELD.appliedTxid, FIELD.appliedId)
  if not s[1] then return true end
  return comparePositions(s[1], s[2], s[3], b, t, i) < 0
end
