-- The store checks its own position against the cursor's (issue 11, store/store-position.ts):
-- the cursor keeps the delivery position (batch, txid, id) of the last row it delivered, and
-- compaction records how far it has pruned, so a store found behind knows whether the outbox
-- still holds what it lacks (then the drain re-delivers it) or not (then the store is rebuilt).
alter table pipeline.consumer_offsets
  add column if not exists last_batch bigint not null default 0,
  add column if not exists last_txid  xid8 not null default '0',
  add column if not exists last_id    bigint not null default 0;

-- Outbox rows with a txid below `below` may have been deleted by compaction.
create table if not exists pipeline.outbox_floor (
  one   boolean primary key default true check (one),
  below xid8 not null default '0'
);
insert into pipeline.outbox_floor default values on conflict do nothing;

-- A change dead-lettered because Redis rejected some of its store operations had the others
-- applied: the load counters still owed are listed here, so a retry adds exactly those deltas
-- (null: none was applied, e.g. a malformed row).
alter table pipeline.dead_letters add column if not exists pending_loads jsonb;
