/**
 * One micro-batch of the drain: read up to N outbox rows of the next snapshot delta (the rows
 * that became visible since the cursor's snapshot; see outbox/delta.ts), turn them into feature
 * updates, apply them to Redis, then move the cursor. When the delta is done the store holds every
 * change committed before the delta's snapshot was taken, and that time becomes `asOf`.
 *
 * Crash safety: the cursor moves in the same Postgres transaction that is committed only after
 * Redis accepted the batch. A crash before that commit leaves the cursor where it was and the
 * next attempt re-applies the same rows, which the store's version checks turn into no-ops.
 * Rows that cannot be applied go to pipeline.dead_letters in that same transaction, so they are
 * neither lost nor retried forever.
 *
 * When nothing is new the activity polls (every DRAIN_POLL_MS, one indexed query) for up to
 * `waitMs` before returning, so a fresh change is picked up within tens of milliseconds without
 * a Temporal round trip per poll; a capture write in this process wakes it sooner
 * (outbox/written-signal.ts).
 */

import { setTimeout as sleep } from 'node:timers/promises';
import { cancellationSignal, heartbeat } from '@temporalio/activity';
import { inActivity } from '../in-activity';
import { throttledHeartbeat } from '../heartbeat-throttle';
import type pg from 'pg';
import { parseSnapshot, snapshotCovers } from '../../db/pg-snapshot';
import type { BeginResult } from '../../db/transaction';
import type { OutboxRow } from '../../features/from-source';
import {
  advanceCursor,
  BATCH_START,
  endDrainPassSql,
  readDelta,
  shardKeys,
  shardRoutes,
  SINGLE_DRAIN,
  type ConsumerCursor,
} from '../../outbox';
import { pendingRows } from '../../outbox/status';
import { OutboxWriteWatch, outboxWrites } from '../../outbox/written-signal';
import { applyUpdates } from '../../store/apply';
import { hold } from '../../store/held';
import { readStorePosition } from '../../store/store-position';
import { adoptedChunkMismatch } from './adopted-chunk';
import { chunkPrint } from '../../store/chunk-print';
import { applyOptions } from '../apply-options';
import { afterApplied, afterIdle, MAX_REBUILDS_REPORTED } from './after-commit';
import { CLAIM_BEGIN_STATEMENTS, claimBeginSql, claimDrain } from './claim';
import { PassConnection } from './pass-connection';
import { checkPosition, resolveDivergence, type Divergence } from './divergence';
import { faultPoint } from './fault-injection';
import { prefetch, takePrefetched } from './prefetch';
import { deadLetterFailures, featureUpdatesOf } from './row-updates';
import { applyTruncates, markIfTruncating, truncatesOfBatch } from './truncates';
import {
  emptyResult,
  type AppliedChunk,
  type DrainBatchInput,
  type DrainBatchResult,
  type DrainDeps,
  type ShardDeps,
  type DrainProgress,
  type Target,
} from './types';

export type { DrainBatchInput, DrainBatchResult, DrainDeps } from './types';

export async function drainBatch(given: DrainDeps, input: DrainBatchInput): Promise<DrainBatchResult> {
  // A shard sees the store as its own partitions (outbox/shards.ts); `allKeys` is the whole store.
  const shard = given.shard ?? SINGLE_DRAIN;
  const deps: ShardDeps = {
    ...given,
    shard,
    allKeys: given.keys,
    keys: shardKeys(given.keys, shard),
    routes: shardRoutes(given.keys, shard),
  };
  const base = input.maxRows ?? deps.config.DRAIN_BATCH_SIZE;
  const largest = Math.max(base, input.maxBatchRows ?? base);
  let maxRows = base;
  // With a budget the activity keeps draining (batches and idle polls) until it is spent: a bounded
  // number of activities per minute whatever the change rate. Without one (tests, the CLI): one
  // applied batch, or idle polls for up to waitMs.
  const deadline = Date.now() + (input.budgetMs || input.waitMs || 0);
  let total: DrainBatchResult | null = null;
  const rebuilds = new Set<string>(); // raised by any pass of this call, reported at its end
  const writes = new OutboxWriteWatch();
  const beat = throttledHeartbeat(heartbeat);
  // Back-to-back passes share a connection, the next BEGIN sent with the last COMMIT (pass-connection.ts)
  const conn = passConnectionOf(deps);
  // The last applied pass's watermark write, answered while the next pass runs (after-commit.ts)
  let unsettled: Promise<boolean> | null = null;
  // when the next pass was begun with the last commit: the writes counted before that pass began
  let chainedAfter: number | null = null;
  try {
    for (;;) {
      // Catch-up: a full chunk (its batch goes on) means a backlog, and the next chunk is twice as
      // big (up to maxBatchRows): each pass waits on a few round trips whatever its size, and under
      // load (capture writing beside it) those take tens of milliseconds each. The next chunk is
      // read ahead at that size, so the prefetch does not hold the growth back.
      const nextRows = Math.min(largest, maxRows * 2);
      const seen = outboxWrites();
      writes.beforePass(chainedAfter ?? seen);
      // an applied pass is followed at once by the next when the activity has budget left
      const chain = !!input.budgetMs && running(deps, deadline);
      const pass = await nextPass(
        unsettled,
        tryOneBatch(deps, conn, input.owner, { now: maxRows, next: nextRows }, chain),
      );
      const result = pass.result;
      unsettled = pass.watermark;
      chainedAfter = chain && result.outcome === 'applied' ? seen : null;
      writes.afterPass(result.outcome === 'applied' ? !result.caughtUp : result.outcome === 'idle' ? false : null);
      // an applied pass counts as finding the store complete once its watermark write says so
      total = addUp(total, result, pass.watermark !== null);
      if (pass.previousComplete) total.storeWasComplete = true;
      // (every shard of the call reports its own: the rest wait in the store for the next lookups)
      for (const sku of result.rebuildSkus ?? []) if (rebuilds.size < MAX_REBUILDS_REPORTED) rebuilds.add(sku);
      maxRows = result.outcome === 'applied' && !result.caughtUp ? nextRows : base;
      total.batchSize = maxRows;
      // busy: a backfill holds the drain lock for a moment; wait like an idle poll.
      const waiting = result.outcome === 'idle' || result.outcome === 'busy';
      const more =
        (waiting || (!!input.budgetMs && result.outcome === 'applied')) &&
        running(deps, deadline - (waiting ? deps.config.DRAIN_POLL_MS : 0)) &&
        // what the workflow must act on ends the activity
        !rebuilds.size &&
        !result.storeIncomplete &&
        !result.frozen;
      if (!more) {
        await conn.close(); // a next pass begun with the last commit
        if (unsettled)
          total = (await unsettled) ? { ...total, storeWasComplete: true } : { ...total, storeIncomplete: true };
        return finished(deps, input, rebuilds.size ? { ...total, rebuildSkus: [...rebuilds] } : total);
      }
      if (inActivity()) beat(() => progressOf(total!));
      // idle: the next poll, or sooner when capture in this process writes (outbox/written-signal.ts)
      if (result.outcome === 'idle') await writes.wait(deps.config.DRAIN_POLL_MS);
      else if (waiting) await sleep(deps.config.DRAIN_POLL_MS);
    }
  } finally {
    await conn.close();
  }
}

/** The connection a call's passes share, its BEGIN naming the shard's consumer and lease (claim.ts). */
const passConnectionOf = (deps: ShardDeps): PassConnection =>
  new PassConnection(
    deps.pool,
    claimBeginSql(deps.consumer ?? deps.shard.consumer, deps.shard.lease, deps.config.CAPTURE_MODE === 'logical'),
    CLAIM_BEGIN_STATEMENTS,
  );

/**
 * Whether the activity may run another pass: before `until`, not cancelled (`ops pause`, or the
 * workflow was cancelled or terminated: learnt through a heartbeat), and the worker is not shutting
 * down (the next run lands on another worker, or this one restarted).
 */
function running(deps: ShardDeps, until: number): boolean {
  return Date.now() < until && !(inActivity() && cancellationSignal().aborted) && !deps.stopping?.aborted;
}

/** Rows counted at most for the Web UI's "behind by N rows" (a count under backlog costs a scan). */
const BEHIND_COUNT_CAP = 100_000;

/** The activity's result; when it ends behind, with how far behind (for the run's current details). */
async function finished(deps: ShardDeps, input: DrainBatchInput, r: DrainBatchResult): Promise<DrainBatchResult> {
  if (!input.budgetMs || r.caughtUp || r.frozen || r.outcome === 'lease-lost' || r.outcome === 'retired') return r;
  const consumer = deps.consumer ?? deps.shard.consumer;
  // Only a figure for people: a failed count must not fail an activity whose batches committed.
  const behind = await pendingRows(deps.pool, consumer, BEHIND_COUNT_CAP, deps.routes).catch(() => null);
  return behind ? { ...r, behindRows: behind.rows, behindCapped: behind.rows >= BEHIND_COUNT_CAP } : r;
}

/** Whether this runs as a Temporal activity (the re-split and tests also call drainBatch directly). */
/** What the running activity's heartbeat tells the workflow and the Web UI. */
export function progressOf(r: DrainBatchResult): DrainProgress {
  return {
    batches: r.batches ?? 0,
    rows: r.rows,
    caughtUp: r.caughtUp,
    newestSourceMs: r.newestSourceMs,
    cursor: r.cursor,
  };
}

/** The passes of one activity as one result: counts summed, the latest position and state. */
function addUp(total: DrainBatchResult | null, r: DrainBatchResult, watermarkPending: boolean): DrainBatchResult {
  const batches = (total?.batches ?? 0) + (r.outcome === 'applied' ? 1 : 0);
  const complete = (r.outcome === 'applied' || r.outcome === 'idle') && !r.storeIncomplete && !watermarkPending;
  const storeWasComplete = !!total?.storeWasComplete || complete;
  if (!total) return { ...r, batches, ...(storeWasComplete ? { storeWasComplete } : {}) };
  const outcome =
    r.outcome === 'idle' || r.outcome === 'busy' ? (total.outcome === 'applied' ? 'applied' : r.outcome) : r.outcome;
  return {
    ...r,
    outcome,
    batches,
    rows: total.rows + r.rows,
    applied: total.applied + r.applied,
    deadLetters: total.deadLetters + r.deadLetters,
    newestSourceMs: r.newestSourceMs ?? total.newestSourceMs,
    ...(storeWasComplete ? { storeWasComplete } : {}),
  };
}

/** Chunk sizes of a pass: this one's, and the next one's (read ahead when this one is full). */
interface ChunkRows {
  now: number;
  next: number;
}

/**
 * One pass: inside one transaction (which holds the drain's lock, and whose commit moves the
 * cursor) the next chunk is read and applied; after the commit, what the store and the workflow
 * learn from it.
 */
async function tryOneBatch(
  deps: ShardDeps,
  conn: PassConnection,
  owner: string,
  rows: ChunkRows,
  chain: boolean,
): Promise<Pass> {
  const consumer = deps.consumer ?? deps.shard.consumer;
  let started = 0;
  const step = await conn.run(async (client, begun, t0) => {
    started = t0;
    const { result, end } = await applyNextChunk(deps, client, consumer, owner, rows, begun);
    return { result, end, chain: chain && result.kind === 'applied' };
  });
  switch (step.kind) {
    case 'done':
      return { result: step.result, watermark: null };
    case 'idle':
      return { result: await afterIdle(deps, step, started), watermark: null };
    case 'applied':
      faultPoint('after-commit');
      return afterApplied(deps, step.chunk, started);
  }
}

/** A pass's result, and the watermark write of an applied one, still in flight (AppliedPass). */
type Pass = { result: DrainBatchResult; watermark: Promise<boolean> | null };

/**
 * The next pass, run while the previous pass's watermark write is answered; the result says
 * storeIncomplete when that write found a partition without its epoch. A failed watermark write
 * fails the call once the pass is done (its transaction ended).
 */
async function nextPass(
  previous: Promise<boolean> | null,
  pass: Promise<Pass>,
): Promise<Pass & { previousComplete: boolean | null }> {
  const [stored, next] = await Promise.allSettled([previous, pass]);
  if (stored.status === 'rejected') throw stored.reason;
  if (next.status === 'rejected') throw next.reason;
  const previousComplete = stored.value;
  if (previousComplete !== false) return { ...next.value, previousComplete };
  return { ...next.value, result: { ...next.value.result, storeIncomplete: true }, previousComplete };
}

/** Where a pass ended, inside its transaction. */
type ChunkStep =
  | { kind: 'done'; result: DrainBatchResult }
  | { kind: 'idle'; next: ConsumerCursor; target: Target; dbNowMs: number }
  | { kind: 'applied'; chunk: AppliedChunk };

/**
 * The steps of one pass, in its transaction; each is a function below or a module of its own. The
 * pass's last statement (the cursor saved, endDrainPassSql) goes with the COMMIT.
 */
async function applyNextChunk(
  deps: ShardDeps,
  client: pg.PoolClient,
  consumer: string,
  owner: string,
  rows: ChunkRows,
  begun: BeginResult,
): Promise<{ result: ChunkStep; end: string | null }> {
  const claimed = await claimDrain(deps, client, owner, begun);
  if (claimed.kind === 'refused') return { result: { kind: 'done', result: claimed.result }, end: null };

  // The batch: rows visible in the target snapshot and not in the cursor's. A batch already in
  // progress (delivered in chunks) keeps its target; otherwise the target is a snapshot taken now
  // (read with the claim, after the lock), or, while DRAIN_SHARDS changes, the freeze snapshot
  // every shard meets at (outbox/shards.ts).
  const { cursor, now } = claimed;
  if (atFreeze(cursor, claimed.frozen))
    return {
      result: { kind: 'done', result: { outcome: 'idle', ...emptyResult(cursor), caughtUp: true, frozen: true } },
      end: null,
    };
  const checked = await checkedChunk(deps, client, consumer, cursor, claimed.frozen ?? now, rows.now);
  if (checked.kind === 'diverged') {
    const resolved = await resolveDivergence(deps, client, consumer, cursor, checked.divergence);
    const result: DrainBatchResult = { outcome: 'repaired', ...emptyResult(resolved.cursor) };
    return {
      result: { kind: 'done', result: resolved.rebuilt ? { ...result, storeIncomplete: true } : result },
      end: null,
    };
  }
  const { target, chunk } = checked;
  const { next, complete } = advanceCursor(cursor, target, chunk.rows, chunk.limit);
  const startedBatch = cursor.position.txid !== BATCH_START.txid || cursor.position.id !== BATCH_START.id;

  if (chunk.rows.length === 0) {
    // Nothing new: the snapshot still moves on (so the next delta starts from it), and every
    // change committed before it was taken is known to be in the store.
    if (startedBatch)
      await applyTruncates(deps, cursor, target.snap, next, await truncatesOfBatch(client, cursor, target, [], true));
    const logged = startedBatch ? { shard: deps.shard, batch: cursor.batch, target, appliedAt: Date.now() } : null;
    // The lease renewed once half its TTL is gone, not every poll: an idle drain keeps it (a
    // manual start of another run would otherwise take it and end this one, and `ops status`
    // would show it free), without a write to the leases row every DRAIN_POLL_MS.
    const lease = claimed.leaseDue ? leaseOf(deps, owner) : null;
    return {
      result: { kind: 'idle', next, target, dbNowMs: now.dbNowMs },
      end: endDrainPassSql(consumer, next, logged, lease),
    };
  }
  if (!complete) prefetch(deps.pool, consumer, deltaInput(deps, cursor, target, next, rows.next));
  // the batch's TRUNCATEs, known before its last chunk is applied (truncates.ts)
  const truncated = complete ? await truncatesOfBatch(client, cursor, target, chunk.rows, startedBatch) : [];
  if (!complete) await markIfTruncating(deps, client, cursor, target);
  const applied = await applyChunk(deps, cursor, next, chunk.rows, truncated.length > 0);
  await deadLetterFailures(deps, client, consumer, chunk.rows, applied.dead, applied.result);
  if (truncated.length) await applyTruncates(deps, cursor, target.snap, next, truncated, applied.chunk);
  // the cursor, the applied snapshot when the batch is complete, and the lease: sent with the COMMIT
  const end = endDrainPassSql(
    consumer,
    next,
    complete ? { shard: deps.shard, batch: cursor.batch, target, appliedAt: applied.visibleAt } : null,
    leaseOf(deps, owner),
  );
  const chunkStep: ChunkStep = {
    kind: 'applied',
    chunk: {
      rows: chunk.rows,
      next,
      complete,
      target,
      applied: applied.result,
      dead: applied.dead,
      applySeconds: applied.seconds,
      visibleAt: applied.visibleAt,
      newestSourceMs: applied.newestSourceMs,
      dbNowMs: now.dbNowMs,
    },
  };
  return { result: chunkStep, end };
}

/** The shard's lease, renewed by a pass's end (taken only if free, expired or this owner's). */
const leaseOf = (deps: ShardDeps, owner: string) => ({
  name: deps.shard.lease,
  owner,
  ttlMs: deps.config.DRAIN_LEASE_TTL_MS,
});

/**
 * The store's check of its position (Redis) and the chunk's read (PostgreSQL), sent together: the
 * read assumes the target the check almost always confirms (the batch's, or the snapshot proposed
 * now), and is read again in the rare pass whose store holds another (a retry after a crash). The
 * connection is the transaction's: its read ends before anything else is done with it.
 */
async function checkedChunk(
  deps: ShardDeps,
  client: pg.PoolClient,
  consumer: string,
  cursor: ConsumerCursor,
  proposed: Target,
  maxRows: number,
): Promise<
  | { kind: 'diverged'; divergence: Divergence }
  | { kind: 'ok'; target: Target; chunk: { rows: OutboxRow[]; limit: number } }
> {
  const assumed: Target = cursor.to !== null ? { snap: cursor.to, at: cursor.toAt } : { ...proposed };
  const reading = readChunk(deps, client, consumer, cursor, assumed, maxRows);
  reading.catch(() => undefined); // awaited below on every path
  const checked = await checkPosition(deps, cursor, proposed).catch(async (err: unknown) => {
    await reading.catch(() => undefined);
    throw err;
  });
  if (checked.kind === 'diverged') {
    await reading; // a failed read aborted the transaction: its error, not the repair's, is the one to see
    return checked;
  }
  if (checked.aheadInClaim) {
    // a crash between a chunk's apply and its commit, or a commit PostgreSQL lost (adopted-chunk.ts)
    await reading;
    const lost = await adoptedChunkMismatch(client, cursor, checked.target.snap, deps.routes, checked.aheadInClaim);
    if (lost) {
      deps.log?.('warn', `the store's last chunk is not in the outbox: ${lost}`, { batch: cursor.batch });
      return {
        kind: 'diverged',
        divergence: { status: 'ahead', store: await readStorePosition(deps.redis, deps.keys) },
      };
    }
  }
  if (checked.target.snap === assumed.snap) return { kind: 'ok', target: checked.target, chunk: await reading };
  await reading.catch(() => undefined);
  return {
    kind: 'ok',
    target: checked.target,
    chunk: await readChunk(deps, client, consumer, cursor, checked.target, maxRows),
  };
}

/**
 * The shard has drained up to the freeze snapshot (DRAIN_SHARDS is changing) and waits there. Past
 * it (it cannot happen: the freeze is taken under this shard's lock, and the layout is read under
 * it): never move back, which would deliver rows again; the re-split finds this shard not at the
 * freeze and gives up, lifting it.
 */
function atFreeze(cursor: ConsumerCursor, frozen: Target | null): boolean {
  return (
    !!frozen &&
    cursor.to === null &&
    (cursor.from === frozen.snap || !snapshotCovers(parseSnapshot(frozen.snap), parseSnapshot(cursor.from)))
  );
}

/** The delta read of the chunk after `next` (for the prefetch) or of this one. */
function deltaInput(deps: ShardDeps, cursor: ConsumerCursor, target: Target, after: ConsumerCursor, limit: number) {
  return { from: cursor.from, to: target.snap, after: after.position, limit, routes: deps.routes };
}

/** This chunk's rows: the prefetched ones if they were read for exactly this cursor, else read now. */
async function readChunk(
  deps: ShardDeps,
  client: pg.PoolClient,
  consumer: string,
  cursor: ConsumerCursor,
  target: Target,
  maxRows: number,
): Promise<{ rows: OutboxRow[]; limit: number }> {
  const prefetched = await takePrefetched(deps.pool, consumer, cursor.from, target.snap, cursor.position);
  if (prefetched) return prefetched;
  return { rows: await readDelta(client, deltaInput(deps, cursor, target, cursor, maxRows)), limit: maxRows };
}

/**
 * The chunk's rows as feature updates, applied to Redis with the store's position in the same calls.
 * `truncating`: the batch's TRUNCATEs empty the store next, which then takes the chunk's end as its
 * position; until then the position stays where the check found it, so a store that loses that
 * rebuild (a restart from a file written before it) is found behind, never in step.
 */
async function applyChunk(
  deps: ShardDeps,
  cursor: ConsumerCursor,
  next: ConsumerCursor,
  rows: OutboxRow[],
  truncating: boolean,
) {
  const { updates, dead, newestSourceMs } = featureUpdatesOf(deps.keys, rows);
  const chunk = chunkPrint(cursor.last, rows);
  // Rows that cannot be applied are held before the call that moves the store's position past
  // them (and again with their letters: row-updates.ts); a Redis file written in between would
  // hold that position without the hold. (What Redis rejects, apply.lua holds in the same call.)
  if (dead.size)
    await hold(
      deps.redis,
      deps.keys,
      [...dead.keys()].map((i) => rows[i]!),
    );
  const t0 = performance.now();
  const result = await applyUpdates(deps.redis, deps.keys, updates, {
    ...applyOptions(deps.config),
    batch: cursor.batch,
    position: truncating ? cursor.last : next.last, // the store's applied position moves in the same call as the changes
    checked: cursor.last, // and only in a partition that still holds what the check saw
    chunkPrint: chunk, // what this chunk delivered: a lost commit is told from a crash by it (adopted-chunk.ts)
  });
  const seconds = (performance.now() - t0) / 1000;
  faultPoint('after-apply');
  return { result, dead, newestSourceMs, seconds, visibleAt: Date.now(), chunk };
}
