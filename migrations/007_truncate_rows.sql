-- The drain applies a captured TRUNCATE by emptying and refilling the store (issue 11; see
-- activities/drain/drain-batch.ts, applyTruncates). At the end of every batch it asks whether the
-- batch held one: this partial index holds only TRUNCATE rows, so the question costs a probe of a
-- tiny index however large the outbox is.
create index if not exists outbox_truncates on pipeline.outbox (txid) where op = 'T';
