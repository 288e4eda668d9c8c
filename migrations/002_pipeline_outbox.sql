-- The pipeline's own schema: the change outbox filled by capture triggers, consumer offsets,
-- the drain lease and dead letters.
create schema if not exists pipeline;

-- One row per captured change, written by the trigger in the same transaction as the change.
--
-- Ordering data, and why there are two numbers:
--   txid: the writing transaction's xid8. Rows of a transaction whose xid8 is below
--         pg_snapshot_xmin(pg_current_snapshot()) are final (that transaction has committed or
--         aborted), so the drain reads only below that horizon, in (txid, id) order, and its
--         cursor is the pair (txid, id). A cursor on id alone skips rows of transactions that
--         commit after a later id was read.
--   id:   a sequence (cache 1, so ids are handed out in call order). For one source row, the
--         changes' ids follow the real order of the changes: a second writer of the same row
--         waits for the first to commit before its trigger runs. The online store therefore
--         versions every row-derived field with this id ("the last change applied to it").
create table if not exists pipeline.outbox (
  id         bigint generated always as identity (cache 1),
  txid       xid8 not null default pg_current_xact_id(),
  tbl        text not null,      -- source table in schema shop
  op         text not null,      -- I insert, U update, D delete, T truncate
  key        text not null,      -- the source primary key, '|'-joined
  image      jsonb,              -- the new row (the old row for D)
  old_image  jsonb,              -- the row before an update, for tables whose consumers need it (orders)
  created_at timestamptz not null default clock_timestamp(),
  primary key (txid, id)
);

-- Where each consumer has got to. The drain moves it only after Redis accepted the batch.
create table if not exists pipeline.consumer_offsets (
  consumer   text primary key,
  txid       xid8 not null default '0',
  id         bigint not null default 0,
  updated_at timestamptz not null default now()
);

-- Politeness lease: one drain workflow run at a time holds it; a second run exits cleanly.
-- (The hard guarantee against concurrent apply is a transaction-scoped advisory lock.)
create table if not exists pipeline.leases (
  name       text primary key,
  owner      text not null,
  expires_at timestamptz not null
);

-- Outbox rows the drain could not apply (malformed image, impossible values), with the error.
create table if not exists pipeline.dead_letters (
  id          bigserial primary key,
  consumer    text not null,
  outbox_txid xid8 not null,
  outbox_id   bigint not null,
  tbl         text,
  op          text,
  key         text,
  image       jsonb,
  old_image   jsonb,
  error       text not null,
  created_at  timestamptz not null default now(),
  retried_at  timestamptz,
  unique (consumer, outbox_txid, outbox_id)
);

-- The capture trigger, shared by all shop tables.
--   TG_ARGV[0], TG_ARGV[1]: the primary-key columns ('' when the key has one column)
--   TG_ARGV[2]: 'with_old' to also keep the before-image of updates (orders: the FC load is a sum,
--               so the drain needs the old contribution to subtract it)
-- An update that changes the primary key is captured as a delete of the old key and an insert of
-- the new one, so consumers never need to know that keys can move.
create or replace function pipeline.capture_change() returns trigger
language plpgsql as $$
declare
  new_image jsonb;
  old_row   jsonb;
  new_key   text;
  old_key   text;
begin
  if TG_OP <> 'DELETE' then
    new_image := to_jsonb(NEW);
    new_key := (new_image ->> TG_ARGV[0]) || coalesce('|' || (new_image ->> nullif(TG_ARGV[1], '')), '');
  end if;
  if TG_OP <> 'INSERT' then
    old_row := to_jsonb(OLD);
    old_key := (old_row ->> TG_ARGV[0]) || coalesce('|' || (old_row ->> nullif(TG_ARGV[1], '')), '');
  end if;

  if TG_OP = 'INSERT' then
    insert into pipeline.outbox (tbl, op, key, image) values (TG_TABLE_NAME, 'I', new_key, new_image);
  elsif TG_OP = 'DELETE' then
    insert into pipeline.outbox (tbl, op, key, image) values (TG_TABLE_NAME, 'D', old_key, old_row);
  elsif new_key is distinct from old_key then
    insert into pipeline.outbox (tbl, op, key, image) values (TG_TABLE_NAME, 'D', old_key, old_row);
    insert into pipeline.outbox (tbl, op, key, image) values (TG_TABLE_NAME, 'I', new_key, new_image);
  else
    insert into pipeline.outbox (tbl, op, key, image, old_image)
    values (TG_TABLE_NAME, 'U', new_key, new_image,
            case when TG_ARGV[2] = 'with_old' then old_row end);
  end if;
  return null;
end $$;

-- TRUNCATE has no rows to capture; record it so the drain can say loudly that the online store
-- needs a backfill instead of silently keeping rows the source no longer has.
create or replace function pipeline.capture_truncate() returns trigger
language plpgsql as $$
begin
  insert into pipeline.outbox (tbl, op, key) values (TG_TABLE_NAME, 'T', '');
  return null;
end $$;

drop trigger if exists capture_change on shop.skus;
create trigger capture_change after insert or update or delete on shop.skus
  for each row execute function pipeline.capture_change('sku_id', '', '');
drop trigger if exists capture_change on shop.fulfillment_centers;
create trigger capture_change after insert or update or delete on shop.fulfillment_centers
  for each row execute function pipeline.capture_change('fc_id', '', '');
drop trigger if exists capture_change on shop.region_fc;
create trigger capture_change after insert or update or delete on shop.region_fc
  for each row execute function pipeline.capture_change('region', 'fc_id', '');
drop trigger if exists capture_change on shop.inventory;
create trigger capture_change after insert or update or delete on shop.inventory
  for each row execute function pipeline.capture_change('sku_id', 'fc_id', '');
drop trigger if exists capture_change on shop.orders;
create trigger capture_change after insert or update or delete on shop.orders
  for each row execute function pipeline.capture_change('order_id', '', 'with_old');

drop trigger if exists capture_truncate on shop.skus;
create trigger capture_truncate after truncate on shop.skus
  for each statement execute function pipeline.capture_truncate();
drop trigger if exists capture_truncate on shop.fulfillment_centers;
create trigger capture_truncate after truncate on shop.fulfillment_centers
  for each statement execute function pipeline.capture_truncate();
drop trigger if exists capture_truncate on shop.region_fc;
create trigger capture_truncate after truncate on shop.region_fc
  for each statement execute function pipeline.capture_truncate();
drop trigger if exists capture_truncate on shop.inventory;
create trigger capture_truncate after truncate on shop.inventory
  for each statement execute function pipeline.capture_truncate();
drop trigger if exists capture_truncate on shop.orders;
create trigger capture_truncate after truncate on shop.orders
  for each statement execute function pipeline.capture_truncate();
