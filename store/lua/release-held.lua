-- Releases held subjects of a partition (store/held.ts), each only if its hold is still the one
-- the caller read: a subject held again meanwhile (a new dead letter, written by the drain before
-- and after its commit) stays held.
-- KEYS[1] the partition's held hash
-- ARGV[1], ARGV[2], … pairs: a field, the value it was read with
-- Returns how many fields were released.
local released = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    released = released + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return released
