-- The TRUNCATEs in the outbox, for the drain to find those of a whole batch when it completes
-- (outbox/delta.ts, truncatesInDelta): a batch delivered in chunks must empty the store if any
-- chunk held one, and PostgreSQL, not the store's memory of earlier chunks, is where that is
-- certain (a crash or a Redis restart after the store was emptied forgets what the store held).
-- Partial: it holds the TRUNCATE rows only, so the capture's inserts of other rows never touch it.
-- Built CONCURRENTLY (a *.notx.sql file: db/migrate.ts), dropped first if a failed run left it INVALID.
drop index concurrently if exists pipeline.outbox_truncates;
create index concurrently outbox_truncates on pipeline.outbox (txid, id) where op = 'T';
