-- A token of each chunk, carried by its watermarks (capture/watermark-read.ts): a chunk's id alone
-- can be handed out again after the pipeline database failed over to a standby that lacked the
-- chunk's row and its sequence's last value, and a capture still behind would then meet the old
-- chunk's watermarks in the stream and place the new chunk's rows there (a load sum read now,
-- placed earlier, counts the changes in between twice). Null in chunks made before it: their
-- watermarks carry none, and match by id as before.
alter table pipeline.capture_chunks add column if not exists token text;
