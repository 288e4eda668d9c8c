-- The OLTP source schema, exactly as the contract gives it (docs/contracts.md). In production these tables
-- belong to the inventory and order services and already exist; `if not exists` makes this a
-- no-op there. The demo, the simulator and the tests use it to create the source.
create schema if not exists shop;

create table if not exists shop.skus (
  sku_id     text primary key,
  title      text not null,
  lifecycle  text not null check (lifecycle in ('active', 'paused', 'discontinued')),
  updated_at timestamptz not null default now()
);

create table if not exists shop.fulfillment_centers (
  fc_id          text primary key,
  region         text not null,
  daily_capacity integer not null check (daily_capacity >= 0),
  updated_at     timestamptz
);

create table if not exists shop.region_fc (
  region text,
  fc_id  text references shop.fulfillment_centers,
  rank   integer,
  primary key (region, fc_id)
);

create table if not exists shop.inventory (
  sku_id     text references shop.skus,
  fc_id      text references shop.fulfillment_centers,
  on_hand    integer not null check (on_hand >= 0),
  reserved   integer not null check (reserved >= 0),
  updated_at timestamptz,
  primary key (sku_id, fc_id)
);

create table if not exists shop.orders (
  order_id  bigserial primary key,
  sku_id    text,
  fc_id     text,
  qty       integer check (qty > 0),
  status    text check (status in ('placed', 'shipped', 'cancelled')),
  placed_at timestamptz not null default now()
);
