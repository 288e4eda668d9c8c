-- Capture from the sources' write-ahead log (logical replication, capture/): how far each source
-- database is in the outbox. Written in the same transaction as the outbox rows it accounts for,
-- so after any crash the two agree (capture/capture-loop.ts).
--   source      the source database's name in the pipeline ('inventory', 'orders', or 'shop' when
--               one database holds every table)
--   slot        its logical replication slot
--   lsn         end of the last source transaction written into the outbox: a transaction the
--               slot sends again after a crash (it was written, the slot not yet told) ends at or
--               below it and is skipped
--   covered_at  every change committed on the source before this time is in the outbox (the
--               newest tick written: capture/ticks.ts); null until the first
--   switch_id   set while the source hands over from the trigger capture (capture/mode-switch.ts):
--               the triggers wrote every change committed before the switch transaction, whose
--               marker carries this id, so capture writes nothing before that marker
create table if not exists pipeline.capture_progress (
  source      text primary key,
  slot        text not null,
  lsn         pg_lsn not null default '0/0',
  covered_at  timestamptz,
  switch_id   text,
  rows        bigint not null default 0,
  updated_at  timestamptz not null default now()
);
