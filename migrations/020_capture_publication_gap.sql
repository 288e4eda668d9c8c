-- When capture last marked the source lost for a gap in its publication (capture/capture-loop.ts:
-- a source table the publication left out, or some of its operations). While lost_at still is
-- that mark, the refill it asked for is the one that covers the gap: capture, refused every 30 s
-- until the publication is mended, does not mark it again (each mark would empty the store anew).
-- A later loss of another kind moves lost_at past it, and a gap found then is marked again.
alter table pipeline.capture_progress add column if not exists gap_at timestamptz;
