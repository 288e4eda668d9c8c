-- The index drain shards read their own rows through (migration 008, outbox/delta.ts), built
-- CONCURRENTLY so the OLTP's writes to the outbox are never blocked while it is built (on a large
-- outbox that takes a while). A file named *.notx.sql runs statement by statement outside a
-- transaction (db/migrate.ts); it is recorded only once every statement succeeded, so a run that
-- failed half way, which may leave an INVALID index behind, drops it and builds it again.
drop index concurrently if exists pipeline.outbox_route;
create index concurrently outbox_route on pipeline.outbox (route, txid, id);
