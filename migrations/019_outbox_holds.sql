-- Holds on the outbox (outbox/holds.ts): a reader that is not a drain consumer (a replay) keeps
-- compaction from deleting the rows from `txid` on until `expires_at`. The reader renews its hold
-- as it moves on and deletes it when done; a hold whose reader is gone (a terminated replay, a
-- worker down for longer than the hold) lapses by itself. Compaction deletes a lapsed hold only
-- 30 days later: until then a replay coming back to it is told that compaction may have passed it.
create table if not exists pipeline.outbox_holds (
  holder     text primary key,
  txid       xid8 not null,
  expires_at timestamptz not null
);

-- Compaction reads this table on every run and replays write it: on an install set up with
-- sql/least-privilege.sql the worker's role needs it now, not after the next `migrate --roles`
-- (which states the same grant).
do $$
begin
  if exists (select 1 from pg_roles where rolname = 'fresh_badges_worker') then
    grant select, insert, update, delete on pipeline.outbox_holds to fresh_badges_worker;
  end if;
end
$$;
