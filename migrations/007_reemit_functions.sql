-- Re-emitting source rows through the outbox (SKU rebuild, verify repairs, fenced dead letters and
-- replays; activities/repair/reemit-rows.ts) as SQL functions, so the pipeline's own role needs
-- no write access to the shop tables: `SELECT ... FOR SHARE` and `LOCK TABLE ... IN SHARE MODE`
-- require UPDATE on the table, which only the functions' owner holds (sql/least-privilege.sql
-- gives them to the capture role). SECURITY DEFINER with a fixed search_path.
--
-- Per row the outbox id falls in true change order: the row is read FOR SHARE in the statement
-- that inserts its outbox row, so a writer before us has a lower id and one after us a higher id.
-- p_delete_absent: a key the source does not have is emitted as a delete; the table is locked in
-- SHARE mode first (writers wait a moment), so "absent" is exact and the delete's id follows every
-- earlier change. Keys: sku, 'sku|fc', fc, 'region|fc'.
create or replace function pipeline.reemit_source_rows(p_tbl text, p_keys text[], p_delete_absent boolean)
returns table (refreshed bigint, deleted bigint)
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  r bigint := 0;
  d bigint := 0;
begin
  if p_delete_absent then
    if p_tbl not in ('skus', 'inventory', 'fulfillment_centers', 'region_fc') then raise exception 'cannot re-emit rows of %', p_tbl; end if;
    execute format('lock table shop.%I in share mode', p_tbl);
  end if;
  if p_tbl = 'skus' then
    insert into pipeline.outbox (tbl, op, key, image)
      select 'skus', 'R', s.sku_id, to_json(s) from (select * from shop.skus t where t.sku_id = any(p_keys) order by t.sku_id for share) s;
    get diagnostics r = row_count;
    if p_delete_absent then
      insert into pipeline.outbox (tbl, op, key, image)
        select 'skus', 'D', k, json_build_object('sku_id', k) from (select distinct k from unnest(p_keys) k) u
         where not exists (select 1 from shop.skus t where t.sku_id = u.k);
      get diagnostics d = row_count;
    end if;
  elsif p_tbl = 'inventory' then
    insert into pipeline.outbox (tbl, op, key, image)
      select 'inventory', 'R', s.sku_id || '|' || s.fc_id, to_json(s)
        from (select * from shop.inventory t where (t.sku_id || '|' || t.fc_id) = any(p_keys)
                 and t.sku_id = any(array(select split_part(k, '|', 1) from unnest(p_keys) k))
               order by t.sku_id, t.fc_id for share) s;
    get diagnostics r = row_count;
    if p_delete_absent then
      insert into pipeline.outbox (tbl, op, key, image)
        select 'inventory', 'D', k, json_build_object('sku_id', split_part(k, '|', 1), 'fc_id', split_part(k, '|', 2))
          from (select distinct k from unnest(p_keys) k) u
         where not exists (select 1 from shop.inventory t where t.sku_id = split_part(u.k, '|', 1) and t.fc_id = split_part(u.k, '|', 2));
      get diagnostics d = row_count;
    end if;
  elsif p_tbl = 'fulfillment_centers' then
    insert into pipeline.outbox (tbl, op, key, image)
      select 'fulfillment_centers', 'R', s.fc_id, to_json(s) from (select * from shop.fulfillment_centers t where t.fc_id = any(p_keys) order by t.fc_id for share) s;
    get diagnostics r = row_count;
    if p_delete_absent then
      insert into pipeline.outbox (tbl, op, key, image)
        select 'fulfillment_centers', 'D', k, json_build_object('fc_id', k) from (select distinct k from unnest(p_keys) k) u
         where not exists (select 1 from shop.fulfillment_centers t where t.fc_id = u.k);
      get diagnostics d = row_count;
    end if;
  elsif p_tbl = 'region_fc' then
    insert into pipeline.outbox (tbl, op, key, image)
      select 'region_fc', 'R', s.region || '|' || s.fc_id, to_json(s)
        from (select * from shop.region_fc t where (t.region || '|' || t.fc_id) = any(p_keys) order by t.region, t.fc_id for share) s;
    get diagnostics r = row_count;
    if p_delete_absent then
      insert into pipeline.outbox (tbl, op, key, image)
        select 'region_fc', 'D', k, json_build_object('region', split_part(k, '|', 1), 'fc_id', split_part(k, '|', 2))
          from (select distinct k from unnest(p_keys) k) u
         where not exists (select 1 from shop.region_fc t where t.region = split_part(u.k, '|', 1) and t.fc_id = split_part(u.k, '|', 2));
      get diagnostics d = row_count;
    end if;
  else
    raise exception 'cannot re-emit rows of %', p_tbl;
  end if;
  return query select r, d;
end $$;

-- The SKU rebuild (a SKU reactivated after its tombstone expired): its skus row and every one of
-- its inventory rows, FOR SHARE, in one statement each.
create or replace function pipeline.refresh_sku(p_sku text)
returns bigint
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  a bigint;
  b bigint;
begin
  insert into pipeline.outbox (tbl, op, key, image)
    select 'skus', 'R', s.sku_id, to_json(s) from (select * from shop.skus where sku_id = p_sku for share) s;
  get diagnostics a = row_count;
  insert into pipeline.outbox (tbl, op, key, image)
    select 'inventory', 'R', i.sku_id || '|' || i.fc_id, to_json(i)
      from (select * from shop.inventory where sku_id = p_sku order by fc_id for share) i;
  get diagnostics b = row_count;
  return a + b;
end $$;
