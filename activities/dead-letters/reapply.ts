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
 * Not while any partition is behind its drain cursor: the drain is about to rewind and deliver
 * those changes again, and settles their letters as it does (redelivered.ts); applied before, a
 * letter's load deltas would be counted by it and by the re-delivery. Checked before, under each
 * letter's lock, and by each apply call itself (a Redis that goes back in between refuses it). Not a TRUNCATE letter (its
 * retry empties the store: a store that lost it is found by its position checks). And only letters
 * retried in the last RETRIED_WINDOW_MS: a load delta's once-marker lives 7 days from the last
 * retry attempt that found or set it (store/lua/apply.lua).
 */
import type pg from 'pg';
import { withTransaction } from '../../db/transaction';
import { cursorOfPartition, shardCursors } from '../../outbox';
import { heldNow, heldSubjects, type HeldRow } from '../../store/held';
import { comparePositions, readPartitionPositions } from '../../store/store-position';
import { applyDeadLetterChecked, DEAD_LETTER_COLUMNS, type DeadLetterRow, type RetryDeps } from './retry';

/**
 * How long after its retry a letter is applied again when its subject is held again, and keeps a
 * hold older than that retry (store/held.ts, release): the outbox's retention (OUTBOX_RETENTION_H,
 * 48 h by default), within which a Redis back from an older file is re-delivered to rather than
 * rebuilt, with room to spare; and less than the 7 days a load delta's once-marker lives.
 */
export const RETRIED_WINDOW_MS = 6 * 86_400_000;

export interface ReapplyResult {
  reapplied: number;
  reopened: number;
  /** Nothing applied: a partition is behind its drain cursor (the drain re-delivers first). */
  storeBehind: boolean;
  settled: HeldRow[];
}

export async function reapplyRetriedHeld(deps: RetryDeps, onProgress: () => void = () => {}): Promise<ReapplyResult> {
  const result: ReapplyResult = { reapplied: 0, reopened: 0, storeBehind: false, settled: [] };
  const held = await heldNow(deps.redis, deps.allKeys);
  if (!held.size) return result;
  const retried = (
    await deps.db.query<DeadLetterRow>(
      `select ${DEAD_LETTER_COLUMNS} from pipeline.dead_letters d
        where retried_at > now() - $1 * interval '1 millisecond' and discarded_at is null and op is distinct from 'T'
        order by d.id`,
      [RETRIED_WINDOW_MS],
    )
  ).rows.filter((dl) => heldSubjects(dl).some((s) => held.has(s)));
  if (!retried.length) return result;
  if (await behindDrainCursor(deps)) return { ...result, storeBehind: true };
  for (const dl of retried) {
    onProgress();
    await withTransaction(deps.db, async (client: pg.PoolClient) => {
      // locked, and still retried: a drain that settled or re-opened it meanwhile (a rewind) owns it
      const still = await client.query(
        `select 1 from pipeline.dead_letters where id = $1 and retried_at is not null and discarded_at is null for update`,
        [dl.id],
      );
      if (!still.rowCount) return;
      // again under the letter's lock: a Redis that went back since the first check
      const cursors = await shardCursors(deps.db);
      if (await behindDrainCursor(deps, cursors)) {
        result.storeBehind = true;
        return;
      }
      // and in each apply call: a partition that went back since this check refuses, atomically,
      // so the drain's re-delivery counts the change alone
      const applied = await applyDeadLetterChecked(deps, dl, cursors);
      if (applied.behind) {
        result.storeBehind = true;
        return;
      }
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

/** Is any partition's own position below its drain shard's last delivered one (Redis lost writes)? */
async function behindDrainCursor(
  deps: RetryDeps,
  cursors: Awaited<ReturnType<typeof shardCursors>> | null = null,
): Promise<boolean> {
  cursors ??= await shardCursors(deps.db);
  const positions = await readPartitionPositions(deps.redis, deps.allKeys);
  return deps.allKeys.partitions.some((p, i) => {
    const own = positions[i]!.applied;
    return !own || comparePositions(own, cursorOfPartition(cursors, p.index).last) < 0;
  });
}
