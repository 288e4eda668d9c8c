/**
 * Retried dead letters whose subjects are held again: a Redis back from a file written after the
 * letter's hold and before its retry holds the subject again, and has lost what the retry wrote.
 * No drain notices (the letter's change lies before the store's position), and nothing waits any
 * more, so compaction would release the hold and the reads would answer fresh without the change.
 * Before it releases anything, compaction applies those letters again: applying one twice changes
 * nothing (each write carries the change's version; each load delta its once-marker, which Redis
 * kept or lost together with the delta), and what it holds is released as a retry releases it.
 * One that fails now waits again, with its new error, and keeps its hold.
 *
 * Only letters retried in the last RETRIED_WINDOW_MS: a load delta's once-marker lives 7 days
 * (store/lua/apply.lua), and a letter applied again after its marker expired would count twice.
 */
import type pg from 'pg';
import { withTransaction } from '../../db/transaction';
import { heldNow, heldSubjects, type HeldRow } from '../../store/held';
import { applyDeadLetter, DEAD_LETTER_COLUMNS, type DeadLetterRow, type RetryDeps } from './retry';

export const RETRIED_WINDOW_MS = 6 * 86_400_000;

export async function reapplyRetriedHeld(
  deps: RetryDeps,
): Promise<{ reapplied: number; reopened: number; settled: HeldRow[] }> {
  const held = await heldNow(deps.redis, deps.allKeys);
  const result = { reapplied: 0, reopened: 0, settled: [] as HeldRow[] };
  if (!held.size) return result;
  const retried = (
    await deps.db.query<DeadLetterRow>(
      `select ${DEAD_LETTER_COLUMNS} from pipeline.dead_letters d
        where retried_at > now() - $1 * interval '1 millisecond' and discarded_at is null order by d.id`,
      [RETRIED_WINDOW_MS],
    )
  ).rows.filter((dl) => heldSubjects(dl).some((s) => held.has(s)));
  for (const dl of retried) {
    await withTransaction(deps.db, async (client: pg.PoolClient) => {
      // locked, and still retried: a drain that re-opened it meanwhile (a rewind) owns it now
      const still = await client.query(
        `select 1 from pipeline.dead_letters where id = $1 and retried_at is not null and discarded_at is null for update`,
        [dl.id],
      );
      if (!still.rowCount) return;
      const applied = await applyDeadLetter(deps, dl);
      if (applied.error === null) {
        result.reapplied++;
        result.settled.push(dl);
      } else {
        await client.query('update pipeline.dead_letters set retried_at = null, error = $2 where id = $1', [
          dl.id,
          applied.error,
        ]);
        result.reopened++;
      }
    });
  }
  return result;
}
