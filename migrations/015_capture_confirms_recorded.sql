-- The recorded position (capture_progress.lsn) never falls behind the slot's confirmed position:
-- a session records every position before it confirms it to the slot, idle ones included
-- (capture/capture-loop.ts). A slot found confirmed past it then means the pipeline database lost
-- capture writes the slot had been told about (it failed over to a standby behind it, or was
-- restored from a backup): the source is recorded as lost and refilled. True once a session of a
-- version that keeps the rule has taken the source (before it, idle positions were confirmed
-- without being recorded, and a slot ahead says nothing).
alter table pipeline.capture_progress add column if not exists confirms_recorded boolean not null default false;
