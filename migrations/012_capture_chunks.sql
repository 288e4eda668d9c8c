-- Reading a source without writing into it (capture/watermark-read.ts, docs/capture.md): a chunk
-- of rows read from a source between a low and a high watermark in its WAL, handed to the capture
-- of that source, which writes into the outbox those the stream did not change meanwhile.
--   keys        the outbox keys asked for ('sku', 'sku|fc', …); null for a range of the table
--   after_key   a range: the rows after this key (in key order), at most row_limit of them
--   delete_absent  a key asked for that the source does not have becomes a delete
--   snapshot    the snapshot the rows were read in (its in-progress list says which recent
--               transactions it did not see: capture/watermark-windows.ts)
--   rows        the rows read: [{"key": …, "image": {…}}], set before the high watermark is written
--   state       open (watermarks on their way), read (rows in), written (in the outbox), abandoned
--               (the capture restarted between the watermarks: read it again)
create table if not exists pipeline.capture_chunks (
  id            bigint generated always as identity primary key,
  source        text not null,
  tbl           text not null,
  keys          text[],
  after_key     text,
  row_limit     int,
  delete_absent boolean not null default false,
  snapshot      pg_snapshot,
  rows          json,
  state         text not null default 'open' check (state in ('open', 'read', 'written', 'abandoned')),
  written       int,
  created_at    timestamptz not null default now(),
  done_at       timestamptz
);
create index if not exists capture_chunks_open on pipeline.capture_chunks (source) where state in ('open', 'read');

-- A source whose slot was lost (dropped, invalidated past max_slot_wal_keep_size, gone after a
-- failover): changes between the old slot's position and the new one's are missing from the
-- outbox. Its reads stay stale (outbox/capture-progress.ts, CAPTURED_THROUGH_SQL) until the store
-- is refilled from that source.
alter table pipeline.capture_progress add column if not exists lost_at timestamptz;
-- when a backfill began that refills a lost source: its end clears lost_at (if the loss came before)
alter table pipeline.capture_progress add column if not exists refill_from timestamptz;

-- Capture from the WAL writes the route of each row itself (the same FNV-1a as pipeline.sku_route,
-- with the partition count read in its transaction): the routing trigger runs only for rows that
-- come without one (the trigger capture's, the re-emit functions'). A route a writer gives is >= 0.
drop trigger if exists route_outbox_row on pipeline.outbox;
create trigger route_outbox_row before insert on pipeline.outbox
  for each row when (NEW.route = -1 and NEW.op <> 'T' and NEW.tbl in ('skus', 'inventory'))
  execute function pipeline.route_outbox_row();
