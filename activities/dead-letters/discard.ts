/**
 * Discarding dead letters an operator has given up on (a change that can never apply, whose
 * effect a backfill or a later change has made moot). The row stays, for audit, with who
 * discarded it, when and why; it no longer counts as waiting and is never retried
 * (waiting.ts). Only waiting letters are discarded: one already applied or discarded is left
 * as it is and reported.
 */
import type pg from 'pg';
import type { HeldRow } from '../../store/held';
import { WAITING_DEAD_LETTER } from './waiting';

export interface DiscardInput {
  /** These dead letters; absent with `all`: every waiting one. */
  ids?: string[];
  all?: boolean;
  /** Who asked (user@host of the operator's command). */
  by: string;
  reason?: string;
}

export interface DiscardResult {
  discarded: string[];
  /** The letters discarded: what they held is released (store/held.ts). */
  settled: HeldRow[];
  /** Asked for by id, but not waiting (already applied or discarded) or not there at all. */
  notWaiting: string[];
}

export async function discardDeadLetters(db: pg.Pool, input: DiscardInput): Promise<DiscardResult> {
  if (!input.all && !input.ids?.length) throw new Error('discard needs dead letter ids or `all`');
  const r = await db.query<{ id: string } & HeldRow>(
    `update pipeline.dead_letters
        set discarded_at = now(), discarded_by = $2, discard_reason = $3
      where ${WAITING_DEAD_LETTER} and ($1::bigint[] is null or id = any($1::bigint[]))
      returning id::text, tbl, op, key, image, old_image`,
    [input.all ? null : input.ids, input.by, input.reason ?? null],
  );
  const discarded = r.rows.map((row) => row.id).sort((a, b) => Number(a) - Number(b));
  const done = new Set(discarded);
  // compared as numbers, as the update matched them: "007" is dead letter 7
  return {
    discarded,
    settled: r.rows,
    notWaiting: input.all ? [] : input.ids!.filter((id) => !done.has(BigInt(id).toString())),
  };
}
