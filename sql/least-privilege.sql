-- Least privilege for fresh-badges (issue 12). Run by a superuser (or the database owner with
-- CREATEROLE) after the migrations, on every database the pipeline uses; idempotent:
--   npm run migrate -- --roles [DATABASE_URL …]
--
-- Three roles:
--   fresh_badges_capture  NOLOGIN. Owns the capture trigger functions and the re-emit functions
--                         (SECURITY DEFINER, fixed search_path). It may add rows to the outbox
--                         and read (FOR SHARE) the shop tables; nothing else.
--   fresh_badges_oltp     the order / inventory services (grant it to their login roles). Reads
--                         and writes the shop tables; NO grant on schema pipeline: its changes
--                         reach the outbox only through the capture functions, so it cannot forge,
--                         read or delete outbox rows.
--   fresh_badges_worker   the pipeline's worker (LOGIN; set a password in production). Reads the
--                         outbox and prunes it, writes its own cursor, leases, dead letters, batch
--                         log and floor; reads the shop tables (backfill, verify) and re-emits rows
--                         only through the SECURITY DEFINER functions. It owns the outbox and the
--                         pipeline's other tables with churn, because VACUUM and ANALYZE (which
--                         compaction runs; this pipeline never relies on autovacuum) need the
--                         owner before PostgreSQL 17. Reads pg_stat_activity rows of other sessions
--                         (pg_read_all_stats) to report open transactions: pid, state and age.
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'fresh_badges_capture') then create role fresh_badges_capture nologin; end if;
  if not exists (select 1 from pg_roles where rolname = 'fresh_badges_oltp') then create role fresh_badges_oltp login; end if;
  if not exists (select 1 from pg_roles where rolname = 'fresh_badges_worker') then create role fresh_badges_worker login; end if;
end $$;

-- Nobody gets anything by default.
revoke all on schema pipeline from public;
revoke all on all tables in schema pipeline from public;
revoke all on all functions in schema pipeline from public;

-- The capture role: insert outbox rows, lock-read shop rows (FOR SHARE needs UPDATE).
grant usage on schema pipeline, shop to fresh_badges_capture;
grant insert on pipeline.outbox to fresh_badges_capture;
grant usage on sequence pipeline.outbox_id_seq to fresh_badges_capture;
grant select, update on all tables in schema shop to fresh_badges_capture;

do $$
declare
  f record;
begin
  for f in
    select p.oid::regprocedure as sig from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname = 'pipeline' and (p.proname like 'capture\_%' or p.proname in ('reemit_source_rows', 'refresh_sku'))
  loop
    execute format('alter function %s owner to fresh_badges_capture', f.sig);
    execute format('alter function %s security definer set search_path = pg_catalog, pg_temp', f.sig);
  end loop;
end $$;
-- Trigger functions run for whoever fires the trigger; the re-emit functions only for the worker.
grant execute on function pipeline.reemit_source_rows(text, text[], boolean), pipeline.refresh_sku(text) to fresh_badges_worker;

-- The services.
grant usage on schema shop to fresh_badges_oltp;
grant select, insert, update, delete, truncate on all tables in schema shop to fresh_badges_oltp;
grant usage on all sequences in schema shop to fresh_badges_oltp;

-- The worker.
grant usage on schema pipeline, shop to fresh_badges_worker;
grant select on all tables in schema shop to fresh_badges_worker;
alter table pipeline.outbox owner to fresh_badges_worker;
grant insert on pipeline.outbox to fresh_badges_capture; -- (owner change keeps grants; restated for clarity)
grant select, insert, update, delete on pipeline.consumer_offsets, pipeline.leases, pipeline.dead_letters,
  pipeline.drain_snapshots, pipeline.outbox_floor to fresh_badges_worker;
grant select on pipeline.schema_migrations to fresh_badges_worker;
grant usage on all sequences in schema pipeline to fresh_badges_worker;
grant pg_read_all_stats to fresh_badges_worker;

-- Drain shards (migration 008): every writer of outbox rows routes them (a trigger on the outbox
-- reads the partition count); the worker reads and changes the shard layout.
grant execute on function pipeline.sku_route(text), pipeline.route_outbox_row() to fresh_badges_capture, fresh_badges_worker;
grant select on pipeline.drain_layout to fresh_badges_capture;
grant select, update on pipeline.drain_layout to fresh_badges_worker;

-- Capture from the WAL (migration 011): the worker writes outbox rows and its capture progress.
grant select, insert, update, delete on pipeline.capture_progress to fresh_badges_worker;
grant select, insert, update, delete on pipeline.capture_chunks to fresh_badges_worker;

-- Replays hold compaction back while they read (migration 019, outbox/holds.ts).
grant select, insert, update, delete on pipeline.outbox_holds to fresh_badges_worker;

-- Compaction VACUUMs and ANALYZEs every table the pipeline churns each run
-- (activities/compaction/vacuum-tables.ts), which needs the owner (PostgreSQL 17's MAINTAIN
-- privilege would do, but not before): the worker owns them, as it owns the outbox. A role that
-- does not own a table gets a warning and the table is skipped, not an error.
alter table pipeline.consumer_offsets owner to fresh_badges_worker;
alter table pipeline.drain_snapshots owner to fresh_badges_worker;
alter table pipeline.leases owner to fresh_badges_worker;
alter table pipeline.dead_letters owner to fresh_badges_worker;
alter table pipeline.outbox_floor owner to fresh_badges_worker;
alter table pipeline.capture_progress owner to fresh_badges_worker;
alter table pipeline.capture_chunks owner to fresh_badges_worker;
-- Whoever applies this script (the database owner) becomes a member of the worker's role: a member
-- of a table's owning role may alter it, so later migrations of the tables the worker owns (the
-- outbox among them) still run as a database owner that is not a superuser (managed PostgreSQL).
grant fresh_badges_worker to current_user;
