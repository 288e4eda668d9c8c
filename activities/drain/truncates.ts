/** A captured TRUNCATE, applied by emptying and refilling the store. */
import type pg from 'pg';
import { isSourceTable, isTruncate } from '../../capture/source-tables';
import type { OutboxRow } from '../../features/from-source';
import { truncatesInDelta, type ConsumerCursor } from '../../outbox';
import { rebuildStore } from '../../store/rebuild';
import { markTruncatePending, readStorePosition } from '../../store/store-position';
import type { DrainDeps, Target } from './types';

/**
 * A TRUNCATE removed rows without a change event each, so the store cannot tell which of its
 * values are gone. When a batch that holds a captured TRUNCATE has been applied completely (and
 * before its cursor commit), the store is emptied and refilled from the source:
 *  - at the end of the batch, not at the TRUNCATE row: a transaction that wrote the table before
 *    the TRUNCATE took its lock can have a higher txid and come later in the same batch, but never
 *    in a later one (it committed before the TRUNCATE did, so every snapshot that sees the
 *    TRUNCATE sees it);
 *  - the store's position becomes the batch's end, with the batch's claim kept: a crash before
 *    the cursor commit re-applies the last chunk and empties the store again (idempotent);
 *  - the deletion fence becomes the batch's target snapshot, in which the TRUNCATE is visible, so
 *    no backfill chunk read before it (a replica behind) fills truncated rows back in;
 *  - the epoch goes: reads say stale and the drain starts `backfill-auto`, which refills every
 *    feature from the source; changes after the batch are applied by the drain meanwhile and win
 *    over the backfill's values exactly when newer (store/apply.ts).
 * The whole store, not only the table's features: an FC's load counts orders, a SKU hash holds
 * lifecycle and stock, and a refill of everything is the path the store already takes after any
 * data loss.
 */
export async function applyTruncates(
  deps: DrainDeps,
  cursor: ConsumerCursor,
  target: string,
  next: ConsumerCursor,
  truncated: string[],
  /** What the batch's last chunk delivered (adopted-chunk.ts), kept with the position it sets. */
  chunk?: string,
): Promise<void> {
  if (truncated.length === 0) return;
  const tables = truncated.map((t) => `shop.${t}`).join(', ');
  deps.log?.(
    'warn',
    `TRUNCATE of ${tables} captured: emptying the online store and refilling it from the source (reads are stale until the backfill is done)`,
    { batch: cursor.batch },
  );
  deps.metrics?.divergence('truncate');
  const claim = (await readStorePosition(deps.redis, deps.keys)).claimed;
  await rebuildStore(deps.redis, deps.keys, { last: next.last, from: target, chunk }, claim);
}

/**
 * Before a chunk that does not complete its batch: when the batch holds a TRUNCATE, the partitions'
 * positions are marked with the batch first (markTruncatePending). The chunk's apply moves the
 * position, maybe to the batch's end already (its last row fills the chunk, and the pass that
 * completes the batch reads nothing): a Redis back from a file written before the emptying would
 * then be in step with the cursor, and serve the rows the TRUNCATE removed. With the mark, the
 * check finds it once the cursor has gone past the batch (store/lua/check-position.lua).
 */
export async function markIfTruncating(
  deps: DrainDeps,
  client: pg.ClientBase,
  cursor: ConsumerCursor,
  target: Target,
): Promise<void> {
  if (!(await contractTruncatesInDelta(client, cursor.from, target.snap)).length) return;
  await markTruncatePending(deps.redis, deps.keys.partitions, cursor.batch);
}

/**
 * The tables the batch's TRUNCATEs emptied, asked as its last chunk is about to be applied. A
 * batch of one chunk holds them in its rows. A batch delivered in chunks asks PostgreSQL for every
 * TRUNCATE of its delta (outbox/delta.ts): the store cannot remember one met in an earlier chunk
 * for sure, since the rebuild empties it, and a retry after a crash between that rebuild and the
 * cursor commit (or a Redis restarted from a file written meanwhile) re-applies only the last
 * chunk, whose rows may come from transactions that wrote before the TRUNCATE (a higher txid,
 * committed first): found again, the TRUNCATE empties the store again.
 */
export async function truncatesOfBatch(
  client: pg.ClientBase,
  cursor: ConsumerCursor,
  target: Target,
  rows: OutboxRow[],
  earlierChunks: boolean,
): Promise<string[]> {
  if (earlierChunks) return contractTruncatesInDelta(client, cursor.from, target.snap);
  return [...new Set(rows.filter(isTruncate).map((r) => r.tbl))];
}

/**
 * The contract tables a TRUNCATE of the delta emptied. A 'T' row of another table is a malformed
 * change (isTruncate): dead-lettered like any other (row-updates.ts), it neither empties nor marks.
 */
async function contractTruncatesInDelta(client: pg.ClientBase, from: string, to: string): Promise<string[]> {
  return (await truncatesInDelta(client, from, to)).filter(isSourceTable);
}
