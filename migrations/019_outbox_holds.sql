-- Holds on the outbox (outbox/holds.ts): a reader that is not a drain consumer (a replay) keeps
-- compaction from deleting the rows from `txid` on until `expires_at`. The reader renews its hold
-- as it moves on and deletes it when done; a hold whose reader is gone (a terminated replay, a
-- worker down for longer than the hold) lapses by itself, and compaction deletes it.
create table if not exists pipeline.outbox_holds (
  holder     text primary key,
  txid       xid8 not null,
  expires_at timestamptz not null
);
