/**
 * Retrying dead letters (after the cause was fixed: a code fix for the feature logic, a Redis key
 * of the wrong type removed, …). Each is applied with its original version, so it cannot
 * overwrite anything newer; each load delta is applied at most once (a marker key in Redis per
 * dead letter and effect), since its stream position is long behind the counter's, and not at all
 * when a backfill has recomputed the counter from a snapshot that saw the change. A change older
 * than the deletion fence whose field the store no longer holds is not written: its source row is
 * re-emitted through the outbox instead (store/fence.ts). Success stamps retried_at;
 * failure records the new error and leaves it for later. A discarded one is never retried.
 */
import type { StoreRedis } from '../../store/redis-client';
import type pg from 'pg';
import { FeatureUpdate } from '../../features/definitions';
import { featureUpdatesFrom, OutboxRow } from '../../features/from-source';
import { applyOps, ApplyOptions, foldOps, STORE_BEHIND_REPLY, StoreOp } from '../../store/apply';
import type { HeldRow } from '../../store/held';
import { PartitionKeys, StoreKeys } from '../../store/keys';
import { rebuildStore } from '../../store/rebuild';
import { readStorePosition } from '../../store/store-position';
import { withTransaction } from '../../db/transaction';
import { cursorOfPartition, lockAllShards, shardCursors, shardKeys, shardOfConsumer } from '../../outbox';
import { isReemitTable, REEMIT_TABLES } from '../repair/reemit-rows';
import { triggerSourceRows, type SourceRows } from '../../capture/source-rows';
import { isTruncate } from '../../capture/source-tables';
import { WAITING_DEAD_LETTER } from './waiting';
import { activityChunkWait } from '../chunk-wait';

export interface DeadLetter {
  id: string;
  consumer: string;
  outbox_txid: string;
  outbox_id: string;
  tbl: string | null;
  op: string | null;
  key: string | null;
  error: string;
  created_at: Date;
  retried_at: Date | null;
  discarded_at: Date | null;
  discarded_by: string | null;
  discard_reason: string | null;
}

export async function listDeadLetters(
  db: pg.Pool,
  /** includeRetried: also those already applied or discarded (not waiting any more). */
  opts: { limit: number; includeRetried?: boolean },
): Promise<{ total: number; rows: DeadLetter[] }> {
  const where = opts.includeRetried ? '' : `where ${WAITING_DEAD_LETTER}`;
  const total = (await db.query(`select count(*)::int as n from pipeline.dead_letters ${where}`)).rows[0].n;
  const rows = (
    await db.query(
      `select id::text, consumer, outbox_txid::text, outbox_id::text, tbl, op, key, error, created_at, retried_at,
              discarded_at, discarded_by, discard_reason
         from pipeline.dead_letters d ${where} order by d.id limit $1`,
      [opts.limit],
    )
  ).rows;
  return { total, rows };
}

export async function retryDeadLetters(
  db: pg.Pool,
  redis: StoreRedis,
  allKeys: StoreKeys,
  opts: ApplyOptions,
  input: { ids?: string[] },
  /** How a fenced change's row is re-read from the source (capture/source-rows.ts). */
  sourceRows: SourceRows = triggerSourceRows(db),
  /** Called after each letter (the activity heartbeats with it: a long retry is shown, and kept alive). */
  onProgress: (p: RetryProgress) => void = () => undefined,
): Promise<{
  retried: number;
  failed: number;
  reemitted: number;
  errors: { id: string; error: string }[];
  /** The letters applied now: what they held is released (store/held.ts). */
  settled: HeldRow[];
}> {
  const r = await db.query<DeadLetterRow>(
    `select ${DEAD_LETTER_COLUMNS} from pipeline.dead_letters d where ${WAITING_DEAD_LETTER} ${input.ids?.length ? 'and id = any($1::bigint[])' : ''} order by d.id`,
    input.ids?.length ? [input.ids] : [],
  );
  const result = {
    retried: 0,
    failed: 0,
    reemitted: 0,
    errors: [] as { id: string; error: string }[],
    settled: [] as HeldRow[],
  };
  for (const [done, dl] of r.rows.entries()) {
    onProgress({ letters: r.rows.length, done, retried: result.retried, failed: result.failed });
    const outcome = await withTransaction(db, async (client) => {
      // Locked while it is retried: a discard that committed since the list above leaves it
      // alone here, and one that comes now waits, then finds it retried (not waiting any more).
      const still = await client.query(
        `select 1 from pipeline.dead_letters where id = $1 and ${WAITING_DEAD_LETTER} for update`,
        [dl.id],
      );
      if (!still.rowCount) return null;
      const deps = { db, redis, allKeys, opts, sourceRows };
      const applied = await applyDeadLetterChecked(deps, dl, await shardCursors(db));
      if (applied.behind)
        applied.error = `not applied: a store partition is behind its drain cursor (Redis back from an older file: the drain delivers this change again once it notices), or has no position yet (rebuilt: the drain's next batch sets it); retry later if the letter still waits (${applied.error})`;
      if (applied.error === null)
        await client.query('update pipeline.dead_letters set retried_at = now() where id = $1', [dl.id]);
      else await client.query('update pipeline.dead_letters set error = $2 where id = $1', [dl.id, applied.error]);
      return applied;
    });
    if (!outcome) continue;
    if (outcome.reemitted) result.reemitted++;
    if (outcome.error === null) {
      result.retried++;
      result.settled.push(dl);
    } else {
      result.failed++;
      result.errors.push({ id: dl.id, error: outcome.error });
    }
  }
  onProgress({ letters: r.rows.length, done: r.rows.length, retried: result.retried, failed: result.failed });
  return result;
}

/** How far a retry is: letters asked for, done so far, and how those went. */
export interface RetryProgress {
  letters: number;
  done: number;
  retried: number;
  failed: number;
}

export interface RetryDeps {
  db: pg.Pool;
  redis: StoreRedis;
  allKeys: StoreKeys;
  opts: ApplyOptions;
  sourceRows: SourceRows;
}

/**
 * applyDeadLetter with each apply call checked against its partition's drain cursor (`cursors`,
 * read under the letter's lock): a partition gone back since (a Redis back from an older file)
 * refuses the call atomically, and `behind` says so. The drain delivers the change again, and
 * settles the letter as it does: applied here too, a load delta would count twice.
 */
export async function applyDeadLetterChecked(
  deps: RetryDeps,
  dl: DeadLetterRow,
  cursors: Awaited<ReturnType<typeof shardCursors>>,
): Promise<{ error: string | null; reemitted: boolean; behind: boolean }> {
  const checkedOf = (p: PartitionKeys) => cursorOfPartition(cursors, p.index).last;
  const applied = await applyDeadLetter({ ...deps, opts: { ...deps.opts, checkedOf } }, dl);
  return { ...applied, behind: applied.error !== null && STORE_BEHIND_REPLY.test(applied.error) };
}

/** Applies one dead letter's change again; the error that keeps it waiting, or null. */
export async function applyDeadLetter(
  { db, redis, allKeys, opts, sourceRows }: RetryDeps,
  dl: DeadLetterRow,
): Promise<{ error: string | null; reemitted: boolean }> {
  // A drain shard dead-lettered the change for its own partitions (a change every shard reads,
  // an order's load, may be dead-lettered by each of them): the retry writes those alone.
  const shard = shardOfConsumer(dl.consumer);
  const keys = shard && shard.count <= allKeys.partitions.length ? shardKeys(allKeys, shard) : allKeys;
  try {
    if (isTruncate(dl)) {
      // Dead-lettered by a version of the pipeline that did not apply TRUNCATE yet: apply it now.
      // (A TRUNCATE of a table outside the contract is malformed: updatesOf fails it again.)
      await rebuildForOldTruncate(db, redis, allKeys);
      return { error: null, reemitted: false };
    }
    const updates = updatesOf(dl);
    const ops: StoreOp[] = foldOps(
      keys,
      updates.filter((u) => u.feature !== 'fc.load').map((update) => ({ update, source: 0 })),
    );
    // Only the load deltas still owed: Redis may have taken some of the change's operations (in
    // some partitions' copies of a counter and not in others).
    const owed: string[] | null = dl.pending_loads;
    (updates.filter((u) => u.feature === 'fc.load') as LoadUpdate[]).forEach((u, n) => {
      for (const p of keys.partitions) {
        const key = p.load(u.fc, u.day);
        if (owed === null || owed.includes(key)) ops.push(deltaOnce(key, u, dl, n));
      }
    });
    // Through the whole store: a SKU row whose key and image disagreed reached a shard that does
    // not own its SKU (drain-batch.ts); its retry writes the SKU's own partition.
    const applied = await applyOps(redis, allKeys, ops, { ...opts, mode: 'retry' });
    if (applied.failures.length) return { error: applied.failures[0].error, reemitted: false };
    // Older than the deletion fence and aimed at a field the store no longer has: the row may
    // have been deleted since (its tombstone swept, its key expired), so its old image must not
    // be written. Its current state is re-emitted through the outbox instead (nothing, if gone).
    if (applied.fenced.length) {
      if (!isReemitTable(dl.tbl))
        throw new Error(
          `a change of ${dl.tbl} was fenced, and only ${REEMIT_TABLES.join(', ')} rows can be re-emitted`,
        );
      // (a minute at most: the letter's row stays locked, and its transaction open, meanwhile)
      await sourceRows.refresh([{ tbl: dl.tbl, key: dl.key }], { ...activityChunkWait(), waitMs: 60_000 });
      return { error: null, reemitted: true };
    }
    return { error: null, reemitted: false };
  } catch (err) {
    return { error: (err as Error).message, reemitted: false };
  }
}

/** The columns of pipeline.dead_letters a DeadLetterRow is read from. */
export const DEAD_LETTER_COLUMNS = `id::text, consumer, outbox_txid::text as txid, outbox_id::text as oid, tbl, op, key, image,
  old_image, pending_loads`;

/** A dead letter as the retry reads it. */
export interface DeadLetterRow {
  id: string;
  consumer: string;
  txid: string;
  oid: string;
  tbl: string;
  op: string;
  key: string;
  image: unknown;
  old_image: unknown;
  pending_loads: string[] | null;
}

type LoadUpdate = Extract<FeatureUpdate, { feature: 'fc.load' }>;

/** The dead letter's change as feature updates (a malformed one throws, and stays a dead letter). */
function updatesOf(dl: {
  oid: string;
  txid: string;
  tbl: string;
  op: string;
  key: string;
  image: unknown;
  old_image: unknown;
}): FeatureUpdate[] {
  const row: OutboxRow = {
    id: dl.oid,
    txid: dl.txid,
    tbl: dl.tbl,
    op: dl.op,
    key: dl.key,
    image: dl.image,
    old_image: dl.old_image,
    created_ms: Date.now(),
  };
  const updates = featureUpdatesFrom(row);
  if (updates.some((u) => u.feature === 'fc.loadSet' || u.feature === 'fc.loadsComplete'))
    // set late, it would overwrite every delta applied since: run the backfill again instead
    throw new Error(
      'a load set cannot be retried late: run `npm run ops -- backfill` to refill the loads, then discard this letter (`npm run ops -- dead-letters discard --id …`): until then the reads it holds (its FC; the whole partition for the last set of a refill) stay stale',
    );
  return updates;
}

/** Each load effect of a dead letter has its own once-marker (an order moved to another FC or day has two). */
function deltaOnce(key: string, u: LoadUpdate, dl: DeadLetterRow, effect: number): StoreOp {
  return {
    kind: 'loadRetry',
    key,
    delta: u.delta,
    mark: `${dl.id}:${effect}`,
    txid: u.txid,
    id: dl.oid,
    source: 0,
  };
}

/**
 * A TRUNCATE dead letter: the store is emptied and refilled by backfill-auto, as the drain does for
 * a TRUNCATE it meets (activities/drain/drain-batch.ts, applyTruncates), under the drain's lock so
 * no batch is between its apply and its commit, from the cursor's position and snapshot.
 */
async function rebuildForOldTruncate(db: pg.Pool, redis: StoreRedis, keys: StoreKeys): Promise<void> {
  await withTransaction(db, async (client) => {
    // every shard's partitions from that shard's own cursor
    for (const { shard, cursor } of (await lockAllShards(client)).shards) {
      const view = shardKeys(keys, shard);
      const claim = (await readStorePosition(redis, view)).claimed;
      await rebuildStore(
        redis,
        view,
        { last: cursor.last, from: cursor.from, to: cursor.to, batch: cursor.batch },
        claim && claim.batch === cursor.batch ? claim : null,
      );
    }
  });
}
