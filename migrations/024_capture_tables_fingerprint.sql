-- The identities (OIDs) of the source's contract tables as the newest tick capture wrote saw them
-- (capture/slot.ts, TABLES_FINGERPRINT_SQL): under a publication of the schema or of all tables, a
-- table dropped and made again, or another renamed into its name, changes no catalog row of the
-- publication (publication_fp), while the store still holds the old table's rows. A tick with
-- other identities marks the source lost, as a publication change does. A column of its own, not
-- a part of publication_fp: workers of the version before compare that one with their own ticks,
-- and would take every write of this version for a publication change.
alter table pipeline.capture_progress add column if not exists tables_fp text;
