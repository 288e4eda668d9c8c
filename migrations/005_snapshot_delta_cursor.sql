-- Snapshot-delta drain (issue 10): a consumer's cursor becomes "the last snapshot whose every
-- visible change has been applied", so an open transaction no longer holds anything back.
--
--   snap_from     every outbox row visible in this snapshot is applied (committed transactions
--                 only: an open or aborted one is never visible)
--   snap_from_at  when snap_from was taken (statement_timestamp of the statement that took it):
--                 every change committed before it is applied, so this is the store's `asOf`
--   batch         number of the batch in progress (or the next one); orders load deltas across
--                 batches: a delivery position is (batch, txid, id), monotone
--   snap_to       the target snapshot of a batch delivered in several chunks, null between
--                 batches; (txid, id) is then the position reached inside it
--
-- A batch is the set of rows visible in snap_to and not in snap_from: rows whose txid is in
-- pg_snapshot_xip(snap_from) or >= pg_snapshot_xmax(snap_from), and visible in snap_to. Both parts
-- are index lookups on the outbox's (txid, id) key.
alter table pipeline.consumer_offsets
  add column if not exists batch        bigint not null default 1,
  add column if not exists snap_from    pg_snapshot not null default '1:1:',
  add column if not exists snap_from_at timestamptz,
  add column if not exists snap_to      pg_snapshot,
  add column if not exists snap_to_at   timestamptz;

-- Upgrading a (txid, id) cursor of the horizon drain. That drain had applied exactly the rows at
-- or before (txid, id) in (txid, id) order, all of them below the horizon: every row with a
-- smaller txid and the rows of txid itself up to id. So snap_from = "txid:txid:" (everything
-- below txid visible) and a batch is left in progress at position (txid, id), towards a snapshot
-- taken now; the rows of txid after id and everything newer are delivered from there.
-- The drain must not run meanwhile: take its lock (stop old workers before migrating).
select pg_advisory_xact_lock(hashtext('fresh-badges:drain:redis-online-store'));

update pipeline.consumer_offsets
   set snap_from = (greatest(txid, '1'::xid8)::text || ':' || greatest(txid, '1'::xid8)::text || ':')::pg_snapshot,
       snap_from_at = null,
       snap_to = pg_current_snapshot(),
       snap_to_at = now(),
       batch = 1
 where consumer = 'redis-online-store';

-- The landing consumer lands only what the drain applied: its batch in progress targets the
-- drain's old position (everything below the drain's txid); the rest follows the drain's
-- snapshots from then on.
update pipeline.consumer_offsets l
   set snap_from = (greatest(l.txid, '1'::xid8)::text || ':' || greatest(l.txid, '1'::xid8)::text || ':')::pg_snapshot,
       snap_to = (greatest(d.txid, l.txid, '1'::xid8)::text || ':' || greatest(d.txid, l.txid, '1'::xid8)::text || ':')::pg_snapshot,
       batch = 1
  from pipeline.consumer_offsets d
 where l.consumer = 'landing' and d.consumer = 'redis-online-store';

-- The drain's log of applied snapshots (one row per batch that delivered rows: its target): the landing
-- consumer reads it to record when each change reached Redis. Replaces the (txid, id) batch log.
drop table if exists pipeline.drain_batches;
create table if not exists pipeline.drain_snapshots (
  batch      bigint primary key,
  snap       pg_snapshot not null,
  taken_at   timestamptz not null,
  applied_at timestamptz not null
);
create index if not exists drain_snapshots_applied_at on pipeline.drain_snapshots (applied_at);
