-- What a source database needs for fresh-badges' capture (docs/capture.md). Run once by the
-- database's owner or a superuser, on the inventory service's database and on the order
-- service's (once when they are the same database); idempotent. The pipeline writes nothing into a
-- source: no trigger, table, function or sequence; only its replication slot lives there, and it
-- creates that itself.
--
-- Before: the server runs with wal_level = logical (a restart), and max_replication_slots and
-- max_wal_senders leave room for one slot and one walsender per pipeline. Cap the WAL a stalled
-- slot may hold with max_slot_wal_keep_size (docs/operations.md explains what that costs).
--
--   psql "$INVENTORY_DATABASE_URL" -f sql/source-setup.sql
-- then give the role below a password (alter role fresh_badges_reader password '…') and put it in
-- INVENTORY_DATABASE_URL / ORDERS_DATABASE_URL.

-- Replica identity, set before the publication: an order update or delete published under another
-- identity cannot be captured (it marks the source for a refill). The primary key (the default) is
-- enough for skus, fulfillment_centers, region_fc and inventory: a delete needs only the key.
-- Orders need the whole old row: the FC load is a sum over orders, so an update or delete
-- subtracts what the order added before.
do $$
begin
  if to_regclass('shop.orders') is not null then alter table shop.orders replica identity full; end if;
end $$;

-- The publication: the shop tables this database holds (the missing ones are skipped, so the same
-- script serves the inventory database, the orders database, or one database with all five).
do $$
declare
  t text;
  tables text[] := array[]::text[];
begin
  foreach t in array array['skus', 'fulfillment_centers', 'region_fc', 'inventory', 'orders'] loop
    if to_regclass('shop.' || t) is not null then tables := tables || format('shop.%I', t); end if;
  end loop;
  if array_length(tables, 1) is null then raise exception 'no shop tables in this database'; end if;
  if exists (select 1 from pg_publication where pubname = 'fresh_badges') then
    execute 'alter publication fresh_badges set table ' || array_to_string(tables, ', ');
  else
    execute 'create publication fresh_badges for table ' || array_to_string(tables, ', ');
  end if;
end $$;

-- The login role capture connects as: REPLICATION (a slot and a walsender) and SELECT on the shop
-- tables (initial fill and repairs read rows; nothing else).
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'fresh_badges_reader') then
    create role fresh_badges_reader login replication;
  else
    alter role fresh_badges_reader login replication;
  end if;
end $$;
grant usage on schema shop to fresh_badges_reader;
grant select on all tables in schema shop to fresh_badges_reader;

-- And pg_read_all_stats: capture reads which sessions wait for a synchronous standby
-- (pg_stat_activity's wait event). Their commits are in the WAL but not yet visible, and a chunk read
-- while one waits must not win over its change (capture/history-start.ts). Without it capture works
-- and logs a warning; such a stall across a capture restart then goes unseen. Granting it needs a
-- superuser (or a role that administers pg_read_all_stats): a notice says so when this role cannot.
do $$
begin
  grant pg_read_all_stats to fresh_badges_reader;
exception when insufficient_privilege then
  raise notice 'fresh_badges_reader was not granted pg_read_all_stats (%): ask a superuser to', sqlerrm;
end $$;

