-- When each drain batch was applied (its end position and time), so the landing area can record,
-- per change, when the pipeline applied it (freshness is analysable offline). Pruned by compaction.
create table if not exists pipeline.drain_batches (
  to_txid    xid8 not null,
  to_id      bigint not null,
  applied_at timestamptz not null,
  primary key (to_txid, to_id)
);
