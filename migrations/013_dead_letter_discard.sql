-- An operator can dismiss a dead letter that will never apply (`ops dead-letters discard`): before,
-- a letter whose retry kept failing stayed "waiting" for ever (the fresh_badges_dead_letters_waiting
-- gauge never went back to 0) unless someone deleted it by hand. The row is kept for audit: who
-- dismissed it, when and why. A dead letter is waiting while neither retried_at nor discarded_at
-- is set (activities/dead-letters/waiting.ts); a retry never picks a discarded one.
alter table pipeline.dead_letters
  add column if not exists discarded_at   timestamptz,
  add column if not exists discarded_by   text,
  add column if not exists discard_reason text;
