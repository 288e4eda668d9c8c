/**
 * A store found ahead of the cursor inside the batch it claimed holds a chunk whose cursor commit
 * PostgreSQL does not have. Two histories end that way:
 *  - the drain crashed between the chunk's Redis apply and its cursor commit: the outbox still
 *    holds the chunk's rows, the retry re-reads exactly them under the claimed target, and the
 *    version checks make the second apply harmless (store/store-position.ts);
 *  - PostgreSQL lost the commit, and with it rows the chunk applied: a failover to an asynchronous
 *    standby or a restore that ended between the outbox writes and the drain's commit. The store
 *    holds changes this history never had. Once the new primary's transaction ids have passed the
 *    claimed target, nothing else tells this from the crash; adopted, those changes would stay in
 *    the store, read as fresh, until their rows change again.
 * Each chunk records, with the position it writes, what it delivered (chunkPrint): the position
 * before it, its row count, the sum of its outbox ids and the sum of their write times (a row a
 * new history wrote under an id the sequence handed out again has another). A store ahead is
 * adopted only when that record starts at the cursor's `last` and the outbox holds those rows
 * again, up to the store's position. Anything else is a store ahead of PostgreSQL, rebuilt like one.
 * The last chunk of a batch that holds a TRUNCATE is applied without moving the position (the
 * emptying that follows sets it: truncates.ts); a record that starts at the store's own position,
 * which is the cursor's, is that chunk, applied and not yet emptied, and is checked the same way.
 */
import type pg from 'pg';
import { readDelta, type ConsumerCursor } from '../../outbox';
import { parseChunkPrint, positionText, sumsOfChunk } from '../../store/chunk-print';
import type { OutboxRow } from '../../features/from-source';
import { comparePositions, type AheadInClaim, type DeliveryPosition } from '../../store/store-position';

/**
 * Why the chunk the store holds beyond the cursor cannot be adopted (null: it can, the outbox holds
 * its rows). `target`: the batch's claimed target; `routes`: the drain shard's (null: every row).
 */
export async function adoptedChunkMismatch(
  client: pg.ClientBase,
  cursor: ConsumerCursor,
  target: string,
  routes: number[] | null,
  ahead: AheadInClaim,
): Promise<string | null> {
  // Partitions of one store can hold records of different chunks from the same position (two
  // attempts that both crashed midway, with different chunk sizes): each is checked.
  const chunks = new Map<string, { applied: DeliveryPosition; print: ReturnType<typeof parseChunkPrint> }>();
  for (const p of ahead.partitions) {
    if (!p.chunk) return 'the store holds no record of the chunk that moved its position';
    chunks.set(`${p.chunk}@${positionText(p.applied)}`, { applied: p.applied, print: parseChunkPrint(p.chunk) });
  }
  let most = 0;
  for (const { print } of chunks.values()) {
    if (!print) return "the store's record of its last chunk is unreadable";
    if (print.before !== positionText(cursor.last))
      return `the store's last chunk began at ${print.before}, the cursor is at ${positionText(cursor.last)}: more than one chunk ahead`;
    most = Math.max(most, print.rows);
  }
  const rows = await readDelta(client, {
    from: cursor.from,
    to: target,
    after: cursor.position,
    limit: most + 1,
    routes,
  });
  for (const { applied, print } of chunks.values()) {
    const lost = chunkMismatch(rows, cursor, applied, print!);
    if (lost) return lost;
  }
  return null;
}

/** Whether `rows` (the delta after the cursor) hold what the record says its chunk applied up to `upTo`. */
function chunkMismatch(
  rows: OutboxRow[],
  cursor: ConsumerCursor,
  upTo: DeliveryPosition,
  print: NonNullable<ReturnType<typeof parseChunkPrint>>,
): string | null {
  // applied in place (a TRUNCATE batch's last chunk): the batch's rows after the cursor, all of them
  const inPlace = comparePositions(upTo, cursor.last) === 0;
  // a row's delivery position in the claimed batch (the one the store's position is in)
  const at = (r: OutboxRow): DeliveryPosition => ({ batch: upTo.batch, txid: r.txid, id: r.id });
  const within = inPlace ? rows : rows.filter((r) => comparePositions(at(r), upTo) <= 0);
  const found = sumsOfChunk(within);
  const last = within.at(-1);
  const endsThere = inPlace || (!!last && comparePositions(at(last), upTo) === 0);
  if (within.length !== print.rows || found !== print.sums || !endsThere)
    return `the outbox holds ${within.length} row(s) of the store's last chunk (sums ${found}), the store applied ${print.rows} (sums ${print.sums})`;
  return null;
}
