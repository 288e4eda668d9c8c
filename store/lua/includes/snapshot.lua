-- PostgreSQL snapshots in their text form "xmin:xmax:xip,xip,…".

-- Did the snapshot d see transaction t committed? (t below xmin: yes; at or above xmax, or in
-- progress: no.)
local function visibleInDesc(d, t)
  local xmin, xmax, xip = string.match(d, '^(%d+):(%d+):(.*)$')
  t = tonumber(t)
  if t < tonumber(xmin) then return true end
  if t >= tonumber(xmax) then return false end
  for x in string.gmatch(xip, '%d+') do
    if tonumber(x) == t then return false end
  end
  return true
end
