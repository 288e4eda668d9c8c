-- With a mark for a change of the source's publication (migration 021): the xmax of the source
-- snapshot of the tick that found it. A transaction open across the change may hold changes the
-- stream never sent, and a read before it commits would not see them either: the refill
-- (activities/backfill/through-watermarks.ts) begins once every one has ended. Cleared with lost_at
-- when the refill completes.
alter table pipeline.capture_progress add column if not exists gap_xmax text;
