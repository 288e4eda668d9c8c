-- Checks a partition's position against the drain cursor's and claims the batch about to be
-- applied (store/store-position.ts).
-- KEYS[1] the partition's pos, KEYS[2] its deletion fence
-- ARGV[1] the cursor's batch, ARGV[2] its from snapshot, ARGV[3] the target snapshot to claim
--         ('' : check only), ARGV[4] the target's time, ARGV[5..7] PostgreSQL's last delivered
--         position (batch, txid, id), ARGV[8] the target of the cursor's batch in progress ('' : none)
-- Returns { status ('ok', 'behind', 'ahead' or 'rebuilding': a rebuild or a TRUNCATE's emptying
--   began and never ended), then the partition's claim and
--   position as they were before this call: claimed batch, from, target, at, applied batch, txid,
--   id, what the chunk that wrote the position delivered ('' : none) }
--- @include "includes/position"
--- @include "includes/fence"
-- A rebuild of the partition that never ended (a Redis back from a file written while it ran):
-- what it holds is part old data, part emptied; it must be rebuilt again, never taken as is.
if redis.call('HEXISTS', KEYS[1], FIELD.rebuilding) == 1 then
  return { 'rebuilding', '', '', '', '', '', '', '', '' }
end
-- A batch's TRUNCATE that was to empty the partition after its last chunk, and the cursor has gone
-- past that batch: the emptying happened, and this Redis came back from a file written before it
-- (what it holds is the data the TRUNCATE removed).
local pending = redis.call('HGET', KEYS[1], FIELD.truncatePending)
if pending and tonumber(pending) < tonumber(ARGV[1]) then
  return { 'rebuilding', '', '', '', '', '', '', '', '' }
end
local f = redis.call('HMGET', KEYS[1], FIELD.claimedBatch, FIELD.claimedFrom, FIELD.claimedTarget, FIELD.claimedAt,
  FIELD.appliedBatch, FIELD.appliedTxid, FIELD.appliedId, FIELD.appliedChunk)
local function state(s)
  return { s, f[1] or '', f[2] or '', f[3] or '', f[4] or '', f[5] or '', f[6] or '', f[7] or '', f[8] or '' }
end
local unpositioned = not f[5]
if unpositioned then
  -- a store with no position (new, or emptied): it starts from PostgreSQL's
  redis.call('HSET', KEYS[1], FIELD.appliedBatch, ARGV[5], FIELD.appliedTxid, ARGV[6], FIELD.appliedId, ARGV[7])
  f[5], f[6], f[7] = ARGV[5], ARGV[6], ARGV[7]
end
-- A store emptied with no position to take a fence from (store/rebuild.ts) fences from the
-- cursor's snapshot: its batch's target when one is in progress (it sees the rows the batch's
-- earlier chunks delivered), else its start; every later change is delivered again.
if unpositioned or redis.call('GET', KEYS[2]) == FENCE_PENDING then
  advanceFenceTo(KEYS[2], ARGV[8] ~= '' and ARGV[8] or ARGV[2])
  -- and that batch's later chunks are judged by it (FIELD.fencedBatch, store/lua/apply.lua)
  if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], FIELD.fencedBatch, ARGV[1]) end
end
local c = comparePositions(f[5], f[6], f[7], ARGV[5], ARGV[6], ARGV[7])
if c < 0 then return state('behind') end
-- The store may be ahead only inside the batch in progress, which it must have claimed (a crash
-- between its Redis apply and its cursor commit; the drain then checks the chunk against the
-- outbox: activities/drain/adopted-chunk.ts). A claim of a batch the cursor has not reached
-- means PostgreSQL lost commits the store had seen.
if c > 0 and (f[5] ~= ARGV[1] or f[1] ~= ARGV[1]) then return state('ahead') end
if tonumber(f[1] or '0') > tonumber(ARGV[1]) then return state('ahead') end
if f[1] == ARGV[1] and f[3] and f[2] ~= ARGV[2] then return state('ahead') end
if ARGV[3] ~= '' and not (f[1] == ARGV[1] and f[3]) then
  redis.call('HSET', KEYS[1], FIELD.claimedBatch, ARGV[1], FIELD.claimedFrom, ARGV[2], FIELD.claimedTarget, ARGV[3],
    FIELD.claimedAt, ARGV[4])
end
return state('ok')
