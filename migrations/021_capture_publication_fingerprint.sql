-- The fingerprint of the source's publication carried by the newest tick capture wrote (capture/
-- ticks.ts, PUBLICATION_FINGERPRINT_SQL): it changes with every change of the publication that
-- concerns the source's tables, even one undone since. A tick written with another fingerprint
-- means the publication changed after the tick before it: changes made meanwhile may never have
-- been published, so the write that carries it marks the source lost (outbox/capture-progress.ts).
alter table pipeline.capture_progress add column if not exists publication_fp text;
