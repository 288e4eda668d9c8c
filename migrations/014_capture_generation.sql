-- A fencing token for capture sessions. Each session that starts streaming a source takes the next
-- generation (capture/capture-loop.ts) and writes only while the row still carries it. Without it,
-- a session left behind (its activity timed out, or it streamed the old primary's slot before a
-- failover) could commit a write after the new session recorded the slot as lost
-- (outbox/capture-progress.ts, markSourceLost): it would set lsn back to the old slot's position,
-- and the new slot's transactions at or below it would be skipped as written.
alter table pipeline.capture_progress add column if not exists generation bigint not null default 0;
