-- Moves the partition's deletion fence forward (store/fence.ts), never back.
-- KEYS[1] fence
-- ARGV[1] the snapshot "xmin:xmax:xip" to move it to
-- Returns 1 moved, 0 already further.
--- @include "includes/fence"
return advanceFenceTo(KEYS[1], ARGV[1])
