-- A change of DRAIN_SHARDS runs as a Temporal workflow (workflows/reshard.ts); the freeze it puts
-- on the drain belongs to that run (issue 21):
--   frozen_by     the run holding the freeze ("<workflow id>/<run id>", or an in-process owner)
--   frozen_until  its lease: renewed while the run works; once past, the drains lift the freeze
--                 themselves (a run that was terminated, or a CLI killed on the old version)
--   splitting     set, in a transaction of its own, before the split rewrites the store's
--                 positions: from then on only finishing the split is safe, so no drain lifts it
alter table pipeline.drain_layout add column if not exists frozen_by text;
alter table pipeline.drain_layout add column if not exists frozen_until timestamptz;
alter table pipeline.drain_layout add column if not exists splitting boolean not null default false;
-- a freeze left by an earlier version has no owner: it expires like any other
update pipeline.drain_layout set frozen_until = now() + interval '30 seconds'
 where frozen is not null and frozen_until is null;
