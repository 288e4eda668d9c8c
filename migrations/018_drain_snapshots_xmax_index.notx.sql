-- The landing's applied clock (activities/export/applied-clock.ts) reads each shard's snapshots
-- from the first one whose xmax is above a chunk's lowest txid (no earlier one can see its
-- changes), then pages on in batch order through the primary key (shard, batch). A shard's
-- snapshots only grow, so in this index xmax order is batch order, and that first snapshot is one
-- probe, not a walk over the hours of the log before it (48 h at OUTBOX_RETENTION_H).
-- Built CONCURRENTLY (a *.notx.sql file: db/migrate.ts): the drain logs a snapshot in the commit
-- of every batch it completes, and a plain build would hold those commits for as long as it runs.
-- Dropped first if a failed run left it INVALID.
drop index concurrently if exists pipeline.drain_snapshots_xmax;
create index concurrently drain_snapshots_xmax on pipeline.drain_snapshots (shard, pg_snapshot_xmax(snap), batch);
