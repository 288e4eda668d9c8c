-- The versioned apply (store/apply.ts): up to APPLY_CHUNK operations in one partition, each checked
-- against the version of what it would overwrite and written in the same atomic call.
-- KEYS[1] the partition's pos (routes the call on a cluster; declared even with no operation),
-- KEYS[i + 1] the key of operation i
-- ARGV[1] tombstone TTL (s), ARGV[2] load-counter TTL past the end of its day (s),
-- ARGV[3] mode: "drain", "backfill", "replay" or "retry" (see the deletion fence below; a
--   backfill's calls are the drain's but for the holds of rejected operations),
-- ARGV[4] the partition's key prefix,
-- ARGV[5..7] the delivery position to record as applied once the operations are done ('' : none),
-- ARGV[8..10] the position the drain checked before this chunk ('' : none): a partition now below
--   it lost writes since the check (its node failed over, or restarted from an old file), so the
--   call refuses with FBBEHIND and writes nothing; the retry's check then finds it behind,
-- ARGV[11] what the chunk delivered (FIELD.appliedChunk), recorded with the position ('' : none),
-- ARGV[12] the drain batch (its number) these operations are delivered in ('' : none),
-- then five ARGV per operation: its code (OP) and four values, encoded by store/store-ops.ts.
-- Returns { applied, failed = { op index, message, … }, rebuild = { op index, … },
--   fenced = { op index, … } }
--
-- Versions. A field holds "value|version": the outbox id of the change that wrote it, or "s<k>"
-- when a backfill wrote it from snapshot k (its "xmin:xmax:xip" in {pp}snaps). A change (id,
-- txid) is newer than an id if its id is higher (in replay mode: not lower, so a replay re-writes
-- values with fixed logic), and newer than a snapshot value if that snapshot did not see its
-- transaction. A pruned snapshot counts as older than everything.
--
-- The deletion fence ({pp}fence, store/fence.ts): a snapshot in which every deletion the store may
-- have forgotten (swept tombstone, expired key, rebuild) is visible. A write into an ABSENT field
-- is refused ("fenced", nothing written) when it could be an older value of a row deleted since:
-- a fill from a snapshot that does not cover the fence, or, in replay and retry modes, a change
-- whose transaction the fence saw. The drain's own deliveries are newer than the fence but in the
-- batch the partition was emptied in (FIELD.fencedBatch): it reads in transaction-id order, so a
-- later chunk may hold an older image of a row an earlier chunk deleted, whose tombstone went with
-- the emptying; those writes are refused too (the refill brings the rows as they are).
-- A pending fence (a store emptied with no snapshot known to see its deletions) refuses them all.
--
-- Per-operation failures (a key of the wrong type, say) are returned, not raised, so one bad key
-- cannot wedge the whole stream: the caller dead-letters that change.
--- @include "includes/position"
--- @include "includes/snapshot"
--- @include "includes/fence"
--- @include "includes/clock"

local tombTtl, loadTtl, prefix = ARGV[1], ARGV[2], ARGV[4]
local replay, fencedMode = ARGV[3] == 'replay', ARGV[3] == 'replay' or ARGV[3] == 'retry'
local snapsKey = prefix .. KEY.snaps
local rebuild, fenced = {}, {}

if ARGV[8] ~= '' and partitionBelow(KEYS[1], ARGV[8], ARGV[9], ARGV[10]) then
  return redis.error_reply('FBBEHIND this store partition lost writes since its position was checked')
end

-- Did backfill snapshot k see transaction t? (A pruned snapshot saw nothing.)
local function visibleIn(k, t)
  local d = redis.call('HGET', snapsKey, k)
  if not d then return false end
  return visibleInDesc(d, t)
end

local fence, fenceRead, covering = nil, false, {}
local function getFence()
  if not fenceRead then fence = redis.call('GET', prefix .. KEY.fence); fenceRead = true end
  return fence
end

-- Does snapshot tag k see every transaction the fence saw? (false when unknown: refuse)
local function coversFence(k)
  local f = getFence()
  if not f then return true end
  if f == FENCE_PENDING then return false end
  if covering[k] ~= nil then return covering[k] end
  local d = redis.call('HGET', snapsKey, k)
  local ok = false
  if d then
    local nmax, nxip = string.match(d, '^%d+:(%d+):(.*)$')
    local fmax, fxip = string.match(f, '^%d+:(%d+):(.*)$')
    ok = tonumber(nmax) >= tonumber(fmax)
    if ok then
      local inF = {}
      for x in string.gmatch(fxip, '%d+') do inF[x] = true end
      for x in string.gmatch(nxip, '%d+') do
        if tonumber(x) < tonumber(fmax) and not inF[x] then ok = false break end
      end
    end
  end
  covering[k] = ok
  return ok
end

-- A replayed or retried change (txid t) into an absent field, older than the fence. A partition
-- with neither a fence nor a position was emptied from outside (FLUSHDB, a Redis back with no
-- file) since the change was read: its tombstones went with them, and the drain's next position
-- check sets the fence (check-position.lua). Until then it refuses them all, as a pending fence
-- does (the change is re-emitted from the source instead). A drain delivery into an absent field
-- is judged by the fence only in the batch the partition was emptied in (FIELD.fencedBatch, above).
local inFencedBatch = nil
local function olderThanFence(cur, t)
  if cur then return false end
  if not fencedMode then
    if inFencedBatch == nil then
      inFencedBatch = ARGV[12] ~= '' and redis.call('HGET', KEYS[1], FIELD.fencedBatch) == ARGV[12]
    end
    if not inFencedBatch then return false end
    local f = getFence()
    if f == FENCE_PENDING then return true end
    return f ~= nil and visibleInDesc(f, t)
  end
  local f = getFence()
  if f == FENCE_PENDING then return true end
  if not f then return redis.call('HEXISTS', KEYS[1], FIELD.appliedBatch) == 0 end
  return visibleInDesc(f, t)
end

-- Is the change (id z, txid t) newer than what the field holds? Also returns what it holds.
local function newer(key, field, z, t)
  local cur = redis.call('HGET', key, field)
  if not cur then return true, cur end
  local bar = string.find(cur, '|', 1, true)
  if not bar then return true, cur end
  local v = string.sub(cur, bar + 1)
  if string.sub(v, 1, 1) == 's' then return not visibleIn(string.sub(v, 2), t), cur end
  if replay then return tonumber(v) <= tonumber(z), cur end
  return tonumber(v) < tonumber(z), cur
end

-- A load counter lives until the end of its UTC day plus the load TTL (features/definitions.ts,
-- loadWindowStart): an absolute time, so which days the store holds does not depend on when a
-- counter was last written. A delta to a day already past that is gone at once (EXPIREAT in the
-- past deletes the key): the store keeps exactly the days of the window.
-- Each counter is also in the partition's load index ({pp}loads, scored by that time), which a
-- refill's completeness (op Z) goes through; an index entry past its time is dropped whenever a
-- new counter enters, so the index holds about the counters the store holds.
local loadIndex = prefix .. KEY.loadIndex
local function expireLoad(key)
  local y, m, d = string.match(key, ':(%d+)(%d%d)(%d%d)$')
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  -- days from 1970-01-01 to the civil date (H. Hinnant's days_from_civil), plus one: the day's end
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  local at = string.format('%d', (era * 146097 + doe - 719468 + 1) * 86400 + loadTtl)
  redis.call('EXPIREAT', key, at)
  if redis.call('ZADD', loadIndex, at, key) == 1 then
    redis.call('ZREMRANGEBYSCORE', loadIndex, '-inf', '(' .. math.floor(serverNowMs() / 1000))
  end
end

-- A load counter's day (yyyymmdd, as a number), from its key.
local function loadDay(key)
  return tonumber(string.match(key, ':(%d+)$'))
end

-- Sets a load counter to n as of position (b, t, id) and what that position saw: snapshot k
-- (a backfill), or, with k empty, every change before it in the outbox (a set the drain applies).
local function setCounter(key, n, b, t, id, k)
  redis.call('HSET', key, FIELD.loadCount, n, FIELD.loadBatch, b, FIELD.loadTxid, t, FIELD.loadId, id)
  if k == '' then
    redis.call('HDEL', key, FIELD.loadSnapshot)
    redis.call('HSET', key, FIELD.loadSetAt, t .. ':' .. id)
  else
    redis.call('HSET', key, FIELD.loadSnapshot, k)
    redis.call('HDEL', key, FIELD.loadSetAt)
  end
  expireLoad(key)
end

-- A counter absent when a delta or a retry reaches it, of a day the partition's last complete
-- refill of the loads read ({pp}loadbase, op Z): that refill found it 0, so it starts at 0 as of
-- the refill, and the change is judged against what the refill saw like any counter's. (Without
-- this, the delta of an order deleted before the refill's snapshot, waiting to be applied, made a
-- counter at minus its quantity.) Returns whether it was made.
local loadBase = prefix .. KEY.loadBase
local function madeFromBase(key)
  local base = redis.call('HMGET', loadBase, FIELD.loadBatch, FIELD.loadTxid, FIELD.loadId, FIELD.loadSnapshot, FIELD.loadFrom)
  if not base[1] or (loadDay(key) or 0) < tonumber(base[5]) or redis.call('EXISTS', key) == 1 then return false end
  setCounter(key, 0, base[1], base[2], base[3], base[4] or '')
  return true
end

-- d and D (discontinued) and x (deleted) start the key's TTL, an expiring tombstone; a and p persist.
-- The TTL runs from when the key became that tombstone (prev: the lifecycle code it had): a later
-- write of the same state (a title edited, every row touched by a nightly job, a refresh, a replay)
-- does not start it again, or a discontinued SKU whose row is written daily would never expire.
local function tombstoneKind(c) if c == 'D' then return 'd' end return c end
local function lifecycleTtl(key, code, prev)
  if code == 'd' or code == 'D' or code == 'x' then
    if prev and tombstoneKind(prev) == tombstoneKind(code) and redis.call('TTL', key) > 0 then return end
    redis.call('EXPIRE', key, tombTtl)
  else
    redis.call('PERSIST', key)
  end
end

-- Has the counter (its position fields pos) already taken the delta at (b, t, id)? Positions
-- are monotone: the drain delivers snapshot deltas in batch order, each in (txid, id) order. A
-- counter last written before the snapshot-delta upgrade has no batch: (txid, id) alone still
-- orders it (every later batch's txids are above the old horizon).
local function alreadyCounted(pos, b, t, id)
  if not pos[2] then return false end
  if pos[1] then return comparePositions(b, t, id, pos[1], pos[2], pos[3]) <= 0 end
  return comparePositions(0, t, id, 0, pos[2], pos[3]) <= 0
end

-- One function per operation: (op index, key, four values) -> how many changes it applied.
local OPS = {}

-- S field value id txid: a plain versioned field (FC capacity, region rank).
OPS[OP.versioned] = function(i, key, field, value, id, txid)
  local isNewer, cur = newer(key, field, id, txid)
  if not isNewer then return 0 end
  if olderThanFence(cur, txid) then fenced[#fenced + 1] = i return 0 end
  redis.call('HSET', key, field, value .. '|' .. id)
  return 1
end

-- A fc value id txid: a SKU's available units at an FC. A key that did not exist gets the
-- tombstone TTL: stock of a SKU the store does not know (tombstone expired, lifecycle not arrived
-- yet) must not live forever; the lifecycle's arrival makes the key persist.
OPS[OP.stock] = function(i, key, fc, value, id, txid)
  local isNewer, cur = newer(key, fc, id, txid)
  if not isNewer then return 0 end
  if olderThanFence(cur, txid) then fenced[#fenced + 1] = i return 0 end
  local existed = cur or redis.call('EXISTS', key) == 1
  redis.call('HSET', key, fc, value .. '|' .. id)
  if not existed then redis.call('EXPIRE', key, tombTtl) end
  return 1
end

-- Y # code id txid: a SKU's lifecycle. U is the same for an update of an existing SKU. An update
-- finding no lifecycle means the key expired (its tombstone ran out) and the SKU's stock is gone
-- from the store. Becoming active or paused then means that stock must be rebuilt, which is
-- recorded in {pp}rebuilds in this same call (a crash after it cannot lose the request) and
-- returned. Still discontinued (a title edit), the lifecycle is written as D, "discontinued, stock
-- lost", so the reactivation that may come later, finding D, raises the rebuild then. (A SKU that
-- simply has no stock, flipped between discontinued and paused, raises none.) V, a refresh of the
-- skus row (a repair, a backfill under capture from the WAL, the re-emission of a retried or
-- replayed change the deletion fence refused), marks a discontinued SKU on a lost key D the same
-- way but raises no rebuild: a backfill's refreshes of a store whose SKU keys are gone would
-- otherwise raise one per SKU, while the backfill re-reads every SKU's stock anyway. D stays D
-- under any later discontinued write until the key is reactivated or expires. No marking while
-- the partition is being refilled (no epoch): the refill re-reads every SKU's stock.
local epochRead, hasEpoch = false, false
local function partitionComplete()
  if not epochRead then hasEpoch = redis.call('EXISTS', prefix .. KEY.epoch) == 1; epochRead = true end
  return hasEpoch
end

local function raiseRebuild(i, key)
  redis.call('SADD', prefix .. KEY.rebuilds, string.sub(key, #prefix + #KEY.sku + 1))
  rebuild[#rebuild + 1] = i
end

local function lifecycle(i, key, field, code, id, txid, isUpdate, isRefresh)
  local isNewer, cur = newer(key, field, id, txid)
  if not isNewer then return 0 end
  if olderThanFence(cur, txid) then
    -- A retried or replayed insert or update on a lost key, refused: the caller re-emits the skus
    -- row as a refresh, which raises no rebuild, and the stock the key held expired with it (an
    -- insert's own stock changes, drained long ago, too), so an active or paused SKU asks for the
    -- stock rebuild here. (The rebuild reads the source as it is now: a SKU discontinued or
    -- deleted since costs one re-read.)
    if not isRefresh and code ~= 'd' and code ~= 'x' and partitionComplete() then raiseRebuild(i, key) end
    fenced[#fenced + 1] = i
    return 0
  end
  local marked = cur and string.sub(cur, 1, 1) == 'D'
  local lost = (isUpdate or isRefresh) and (not cur or marked) and partitionComplete()
  if code == 'd' and (marked or lost) then code = 'D' end
  redis.call('HSET', key, field, code .. '|' .. id)
  lifecycleTtl(key, code, cur and string.sub(cur, 1, 1))
  if lost and isUpdate and code ~= 'D' and code ~= 'x' then raiseRebuild(i, key) end
  return 1
end
OPS[OP.lifecycle] = function(i, key, f, c, id, t) return lifecycle(i, key, f, c, id, t, false, false) end
OPS[OP.lifecycleUpdate] = function(i, key, f, c, id, t) return lifecycle(i, key, f, c, id, t, true, false) end
OPS[OP.lifecycleRefresh] = function(i, key, f, c, id, t) return lifecycle(i, key, f, c, id, t, false, true) end

-- L delta txid id batch: add delta to a load counter if its delivery position is past the
-- counter's and the counter's snapshot (if a backfill set it) did not see txid.
local function loadPosition(key)
  return redis.call('HMGET', key, FIELD.loadBatch, FIELD.loadTxid, FIELD.loadId, FIELD.loadSnapshot)
end

OPS[OP.loadDelta] = function(i, key, delta, txid, id, batch)
  local pos = loadPosition(key)
  if not pos[2] and madeFromBase(key) then pos = loadPosition(key) end
  if alreadyCounted(pos, batch, txid, id) then return 0 end
  if pos[4] and visibleIn(pos[4], txid) then return 0 end
  redis.call('HINCRBY', key, FIELD.loadCount, delta)
  redis.call('HSET', key, FIELD.loadBatch, batch, FIELD.loadTxid, txid, FIELD.loadId, id)
  expireLoad(key)
  return 1
end

-- M deltas - - batch: the L deltas of one counter in this call, "delta:txid:id,…" in stream
-- order, each checked exactly as an L op would be (against the counter's running position and
-- snapshot), then one HINCRBY of the sum and one position write: a backlog's orders hit a few
-- FC-day counters thousands of times.
OPS[OP.loadDeltas] = function(i, key, deltas, _, _, batch)
  local pos = loadPosition(key)
  if not pos[2] and madeFromBase(key) then pos = loadPosition(key) end
  local sk = pos[4] and redis.call('HGET', snapsKey, pos[4])
  local sum, taken, lastT, lastI = 0, 0, nil, nil
  for dl, ts, is in string.gmatch(deltas, '(-?%d+):(%d+):(%d+)') do
    if not alreadyCounted(pos, batch, ts, is) and not (sk and visibleInDesc(sk, ts)) then
      sum, taken, lastT, lastI = sum + tonumber(dl), taken + 1, ts, is
      pos[1], pos[2], pos[3] = batch, ts, is
    end
  end
  if taken == 0 then return 0 end
  redis.call('HINCRBY', key, FIELD.loadCount, sum)
  redis.call('HSET', key, FIELD.loadBatch, batch, FIELD.loadTxid, lastT, FIELD.loadId, lastI)
  expireLoad(key)
  return taken
end

-- B field value s<k> rule: a backfill fill of the field from snapshot k, only if it is absent
-- (rule y lifecycle, a SKU stock, s plain), with the same TTL rules as Y and A. A discontinued
-- lifecycle filled into a complete partition (a manual backfill) is written D like an update's:
-- its absence means the key expired with its stock, so a reactivation drained later (which finds
-- a lifecycle, and would not look further) rebuilds it. A refill (no epoch) re-reads all stock.
OPS[OP.fill] = function(i, key, field, value, snapshot, rule)
  if redis.call('HEXISTS', key, field) == 1 then return 0 end
  if not coversFence(string.sub(snapshot, 2)) then fenced[#fenced + 1] = i return 0 end
  if rule == 'y' and value == 'd' and partitionComplete() then value = 'D' end
  local existed = redis.call('EXISTS', key) == 1
  redis.call('HSET', key, field, value .. '|' .. snapshot)
  if rule == 'y' then lifecycleTtl(key, value) elseif rule == 'a' and not existed then redis.call('EXPIRE', key, tombTtl) end
  return 1
end

-- C n b:txid:id - k: a load counter set to n as of delivery position (b, txid, id): by a backfill,
-- with snapshot k (taken under the drain lock: activities/backfill); or by the drain applying a
-- load set re-read from a source captured from the WAL, with no snapshot (k empty).
OPS[OP.loadSet] = function(i, key, count, position, _, snapshot)
  local b, t, id = string.match(position, '^(%d+):(%d+):(%d+)$')
  setCounter(key, count, b, t, id, snapshot)
  return 1
end

-- Z from b:txid:id - k: a refill of the loads names every FC and day from day `from` on whose load
-- is not 0, and has set them: a backfill with snapshot k under the drain lock, its sets at this
-- same position; or a chunk re-read between watermarks (k empty), whose last load set carries
-- this, its sets being those of this outbox transaction (txid). So every other counter of the
-- partition from that day on, written before this position, is 0 as of it, and a counter absent
-- now starts at 0 as of it when a change reaches it later (madeFromBase). Either way a delta the
-- refill saw is not added again: after the store was emptied, the delta of an order deleted or
-- moved away before the refill's snapshot may be applied before the refill (capture from the
-- WAL) or after it (the trigger capture's waiting rows). It comes after the sets: before them, a
-- named FC would read 0 until its set came, maybe in another call.
OPS[OP.loadsComplete] = function(i, key, from, position, _, snapshot)
  local b, t, id = string.match(position, '^(%d+):(%d+):(%d+)$')
  local fromDay = tonumber(from)
  redis.call('ZREMRANGEBYSCORE', loadIndex, '-inf', '(' .. math.floor(serverNowMs() / 1000))
  for _, k in ipairs(redis.call('ZRANGE', loadIndex, 0, -1)) do
    local p = redis.call('HMGET', k, FIELD.loadBatch, FIELD.loadTxid, FIELD.loadId, FIELD.loadCount, FIELD.loadSetAt,
      FIELD.loadSnapshot)
    if not p[4] then
      redis.call('ZREM', loadIndex, k)
    elseif (loadDay(k) or 0) >= fromDay then
      local at = p[2] and comparePositions(p[1] or 0, p[2], p[3], b, t, id) or -1
      local zero
      if snapshot == '' then
        -- before it in the stream, and not one of the refill's own sets (its outbox transaction)
        zero = at < 0 and not (p[5] and string.match(p[5], '^(%d+):') == t)
      else
        -- at or before its position (everything the drain delivered, which the snapshot saw), and
        -- not one of the backfill's own sets (its position and snapshot)
        zero = at < 0 or (at == 0 and p[6] ~= snapshot)
      end
      if zero then setCounter(k, 0, b, t, id, snapshot) end
    end
  end
  redis.call('DEL', loadBase)
  redis.call('HSET', loadBase, FIELD.loadBatch, b, FIELD.loadTxid, t, FIELD.loadId, id, FIELD.loadFrom, from)
  if snapshot ~= '' then redis.call('HSET', loadBase, FIELD.loadSnapshot, snapshot) end
  return 1
end

-- R delta mark txid id: a dead-letter retry of a load delta, applied once per marker (dead letter
-- id and effect number: an order that moved FC or day has two), and not at all when the counter
-- was set since by a recomputation that saw the change: a backfill from a snapshot that saw its
-- transaction, or a load set re-read from a source captured from the WAL that comes after the
-- change in the outbox (one capture writes a source's transactions one after another, in commit
-- order, so its outbox positions are that order).
OPS[OP.loadRetry] = function(i, key, delta, mark, txid, id)
  local set = redis.call('HMGET', key, FIELD.loadSnapshot, FIELD.loadSetAt)
  if not set[1] and not set[2] and madeFromBase(key) then set = redis.call('HMGET', key, FIELD.loadSnapshot, FIELD.loadSetAt) end
  if set[1] and visibleIn(set[1], txid) then return 0 end
  if set[2] and id ~= '' then
    local st, si = string.match(set[2], '^(%d+):(%d+)$')
    if st and comparePositions(0, txid, id, 0, st, si) < 0 then return 0 end
  end
  -- (a marker found is kept another 7 days: compaction may apply a retried letter again within 6
  -- days of its retry, activities/dead-letters/reapply.ts RETRIED_WINDOW_MS)
  if not redis.call('SET', prefix .. KEY.deadLetterRetry .. mark, '1', 'NX', 'EX', 604800) then
    redis.call('EXPIRE', prefix .. KEY.deadLetterRetry .. mark, 604800)
    return 0
  end
  redis.call('HINCRBY', key, FIELD.loadCount, delta)
  expireLoad(key)
  return 1
end

local function run(code, i, key, x, y, z, w)
  local op = OPS[code]
  if not op then error('unknown operation ' .. tostring(code)) end
  return op(i, key, x, y, z, w)
end

-- The held field (store/held.ts) of what a rejected operation's key holds: its SKU, its FC (an
-- FC's capacity or load), its region; the whole partition when the key tells none.
local function heldSubjectOf(key)
  local k = string.sub(key, #prefix + 1)
  for _, kind in ipairs({ 'sku', 'fc', 'region' }) do
    if string.sub(k, 1, #KEY[kind]) == KEY[kind] then return HELD[kind] .. string.sub(k, #KEY[kind] + 1) end
  end
  if string.sub(k, 1, #KEY.load) == KEY.load then
    local fc = string.match(string.sub(k, #KEY.load + 1), '^(.*):%d+$')
    if fc then return HELD.fc .. fc end
  end
  return HELD.all
end

local applied, failed = 0, {}
for i = 1, #KEYS - 1 do
  local a = 12 + (i - 1) * 5
  local ok, res = pcall(run, ARGV[a + 1], i, KEYS[i + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5])
  if ok then
    applied = applied + res
  else
    failed[#failed + 1] = i
    failed[#failed + 1] = type(res) == 'table' and (res.err or 'error') or tostring(res)
    -- The drain dead-letters the change and holds its subjects after this call returns. Held here
    -- too, in the same call as the position below: a Redis file written between the two would
    -- hold that position without the hold, and, restored after the letter's retry, answer the
    -- subject fresh without the change (nothing then shows the retry lost, activities/dead-letters/
    -- reapply.ts). Worker's clock or this server's: a hold's value only ages it (HELD_SETTLE_MS).
    -- (Not a backfill's: it fails, and retries, with no letter to name the hold.)
    if ARGV[3] == 'drain' then redis.call('HSET', prefix .. KEY.held, heldSubjectOf(KEYS[i + 1]), serverNowMs()) end
  end
end
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], FIELD.appliedBatch, ARGV[5], FIELD.appliedTxid, ARGV[6], FIELD.appliedId, ARGV[7])
  -- what this chunk delivered, or nothing known: never an earlier chunk's beside this position
  -- (an older version's apply, which knows no record, leaves one: a store found ahead then is rebuilt)
  if ARGV[11] ~= '' then
    redis.call('HSET', KEYS[1], FIELD.appliedChunk, ARGV[11])
  else
    redis.call('HDEL', KEYS[1], FIELD.appliedChunk)
  end
end
return { applied, failed, rebuild, fenced }
