-- Parallel drain shards (issue 14): DRAIN_SHARDS drains, each applying a disjoint set of store
-- partitions (store/keys.ts) and reading only the outbox rows that write them.
--
--   outbox.route  the store partition of the SKU a skus/inventory row writes (FNV-1a of the SKU id
--                 mod the partition count, exactly as store/keys.ts hashes it), or -1 for a row whose
--                 copies live in every partition (FCs, regions, orders' loads, TRUNCATEs): every
--                 shard reads those. Set by a trigger on the outbox as each row is inserted; the
--                 index (route, txid, id) (009) lets a shard read its own rows in delivery order
--                 without touching the others'.
--   drain_layout  how many shards drain now, the partition count routes are computed with, and a
--                 freeze snapshot while the number of shards changes (outbox/shards.ts).
--
-- Adding the column needs pipeline.outbox to itself for an instant, so no transaction that wrote it
-- may be open (every OLTP write queues behind the wait): at most 3 s, then the migration fails
-- with a hint and is run again. The index is built in 009, without blocking writes.
set local lock_timeout = '3s';
alter table pipeline.outbox add column if not exists route int not null default -1;
set local lock_timeout = 0;

create table if not exists pipeline.drain_layout (
  one                boolean primary key default true check (one),
  shards             int not null default 1 check (shards >= 1),
  partitions         int not null default 1 check (partitions >= 1),
  -- while set, every shard drains up to this snapshot and no further (a change of DRAIN_SHARDS)
  frozen             pg_snapshot,
  frozen_at          timestamptz,
  partitions_set_at  timestamptz not null default now()
);
insert into pipeline.drain_layout default values on conflict do nothing;

-- The partition of a SKU id: FNV-1a (32 bit) of its UTF-8 bytes, mod drain_layout.partitions. About
-- 2 µs a row with the lookup, beside the ~57 µs the capture costs. The partition count is read, not
-- written into the function, so changing it is an UPDATE the worker's role may make, and commits
-- with the transaction that makes it (outbox/shards.ts: setRoutePartitions).
create or replace function pipeline.sku_route(sku text) returns int
language plpgsql stable as $$
declare
  h bigint := 2166136261;
  b bytea := convert_to(sku, 'UTF8');
  n int;
begin
  select partitions into n from pipeline.drain_layout;
  if n is null or n <= 1 then return 0; end if;
  for i in 0 .. length(b) - 1 loop
    h := ((h # get_byte(b, i)) * 16777619) & 4294967295;
  end loop;
  return (h % n)::int;
end $$;

-- Every outbox row of skus or inventory (but a TRUNCATE, which every shard must meet) is routed as it is inserted, whoever inserts it (the capture
-- triggers, the re-emit functions of 007). The SKU id is the whole key of a skus row, and the
-- image's sku_id for inventory (the key "sku|fc" cannot be split when an id holds '|'); the drain
-- reads the SKU from the same places. One BEFORE trigger instead of a change to each writer, so no
-- path can forget the route.
create or replace function pipeline.route_outbox_row() returns trigger
language plpgsql as $$
begin
  if NEW.op = 'T' then
    return NEW;
  elsif NEW.tbl = 'skus' then
    NEW.route := pipeline.sku_route(NEW.key);
  elsif NEW.tbl = 'inventory' then
    NEW.route := pipeline.sku_route(coalesce(NEW.image ->> 'sku_id', split_part(NEW.key, '|', 1)));
  end if;
  return NEW;
end $$;
drop trigger if exists route_outbox_row on pipeline.outbox;
create trigger route_outbox_row before insert on pipeline.outbox
  for each row execute function pipeline.route_outbox_row();

-- Each shard logs its applied snapshots under its own batch numbers.
alter table pipeline.drain_snapshots add column if not exists shard int not null default 0;
alter table pipeline.drain_snapshots drop constraint if exists drain_snapshots_pkey;
alter table pipeline.drain_snapshots add primary key (shard, batch);
