-- The last source transaction a capture wrote: its end position, xid and commit time, and the
-- recorded position it stands under (last_txn_for = lsn: no transaction of the source's history
-- ends between it and lsn). A slot confirmed behind the recorded position re-sends that very
-- transaction before anything past it; a different one, or one ending between it and lsn, means
-- the source's history since is not the one captured (the source was restored from a backup or a
-- disk snapshot, or failed over to a standby behind it with its slot): the source is recorded as
-- lost and refilled (capture/history-check.ts). A write by an older version moves lsn alone, and
-- then the check is not made.
alter table pipeline.capture_progress
  add column if not exists last_txn_lsn pg_lsn,
  add column if not exists last_txn_xid bigint,
  add column if not exists last_txn_commit_ms float8,
  add column if not exists last_txn_for pg_lsn;
