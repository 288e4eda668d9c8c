-- The recorded position (capture_progress.lsn) never falls behind the slot's confirmed position:
-- a session records every position before it confirms it to the slot, idle ones included
-- (capture/capture-loop.ts). A slot found confirmed past it then means the pipeline database lost
-- capture writes the slot had been told about (it failed over to a standby behind it, or was
-- restored from a backup): the source is recorded as lost and refilled.
-- confirms_recorded_by: the generation of the session that took the source keeping the rule. The
-- rule holds while no other session took it since (generation still equal): an older version's
-- session, during a rolling upgrade or a rollback, confirms idle positions without recording them.
alter table pipeline.capture_progress add column if not exists confirms_recorded_by bigint;
