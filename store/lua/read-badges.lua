-- The badge read of one partition, read-only (serving/badge-reader.ts): everything a badge needs
-- from the partition's own slot, and its freshness, in one atomic call.
-- KEYS[1] the partition's meta (routes the call on a cluster)
-- ARGV[1] the partition's prefix, ARGV[2] the UTC day (yyyymmdd) loads count on, ARGV[3] the
--         region, ARGV[4..] the SKUs
-- Returns { the region's hash as a flat list [fc, rank, …] in Redis's order,
--   [capacity, load, …] of each of those FCs ('' : none),
--   { caughtUpAt or false, partition count, caughtUpClock or false, this server's TIME in ms }
--   (false also while the partition has no epoch: it is being emptied or refilled, and its
--   watermark, if any is left, says nothing; caughtUpClock and TIME measure the lag on one clock),
--   then per SKU [lifecycle, stock at each FC in the region's order, 1 when its stock is being
--   rebuilt ({p}rebuilds: reactivated after its key expired; the stock it has is not the source's)
--   or a change of it waits in the dead letters ({p}held), else 0] }
--- @include "includes/clock"
local p, day = ARGV[1], ARGV[2]
local region = redis.call('HGETALL', p .. KEY.region .. ARGV[3])
local fcs = {}
for i = 1, #region, 2 do fcs[#fcs + 1] = region[i] end
local fcinfo = {}
for _, fc in ipairs(fcs) do
  fcinfo[#fcinfo + 1] = redis.call('HGET', p .. KEY.fc .. fc, FIELD.capacity) or ''
  fcinfo[#fcinfo + 1] = redis.call('HGET', p .. KEY.load .. fc .. ':' .. day, FIELD.loadCount) or ''
end
local meta = redis.call('HMGET', p .. KEY.meta, FIELD.caughtUpAt, FIELD.partitions, FIELD.caughtUpClock)
if redis.call('EXISTS', p .. KEY.epoch) == 0 then meta[1] = false meta[3] = false end
-- Waiting dead letters (store/held.ts): one of the whole partition, of this region or of one of its
-- FCs makes the answer stale; one of a SKU makes that SKU unknown. (No held key: nothing waits.)
-- (HMGET, not HEXISTS: the reader's ACL user may run only what reads already ran, docs/operations.md.)
local held = p .. KEY.held
local anyHeld = redis.call('EXISTS', held) == 1
if anyHeld then
  -- (no region: the freshness alone, which a letter of the empty region, r:, does not concern)
  local fields = { HELD.all }
  if ARGV[3] ~= '' then fields[#fields + 1] = HELD.region .. ARGV[3] end
  for _, fc in ipairs(fcs) do fields[#fields + 1] = HELD.fc .. fc end
  for _, at in ipairs(redis.call('HMGET', held, unpack(fields))) do
    if at then meta[1] = false meta[3] = false end
  end
end
meta[4] = serverNowMs()
local out = { region, fcinfo, meta }
for i = 4, #ARGV do
  local row = redis.call('HMGET', p .. KEY.sku .. ARGV[i], FIELD.lifecycle, unpack(fcs))
  local unknown = redis.call('SISMEMBER', p .. KEY.rebuilds, ARGV[i])
  if unknown == 0 and anyHeld and redis.call('HMGET', held, HELD.sku .. ARGV[i])[1] then unknown = 1 end
  row[#row + 1] = unknown
  out[#out + 1] = row
end
return out
