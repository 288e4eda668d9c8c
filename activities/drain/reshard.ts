/**
 * Changing DRAIN_SHARDS on a live install: the steps of the re-split workflow (workflows/reshard.ts,
 * started by `npm run ops -- reshard --shards N` or by `npm start` when DRAIN_SHARDS differs from the
 * layout in the database). Nothing is lost and nothing is applied twice, because the shards are
 * re-split at one snapshot that every shard has applied exactly:
 *
 *  1. freeze: under every shard's lock, a snapshot S is taken and written into the layout
 *     (pipeline.drain_layout.frozen). From then on each shard's next batch targets S instead of a
 *     new snapshot, so every shard drains up to S and stops there (its batch in progress, if any,
 *     targets an older snapshot, which S covers). Writers go on; changes after S wait in the outbox.
 *  2. catch up: the running drain workflows do that by themselves; a shard with no running drain
 *     (paused, no worker) is driven here, in this process, through the same batch code.
 *  3. split: under every old and new shard's lock, with every old cursor exactly at S: the new
 *     shards' cursors start at S, with a batch number above every number any old shard used, every
 *     partition's own position is set to match (store/store-position.ts), the old cursors and
 *     leases go, the layout says N and the freeze is lifted, all in one transaction whose commit
 *     is the switch. Runs of old shards are told `retired` by their next batch and end.
 *
 * Then the drain schedules of the new layout are put in place (an operator's pause kept).
 * Reads stay correct throughout: every partition's watermark stays where its shard left it, so a
 * read during the freeze answers stale if the freeze outlasts STALE_AFTER_MS.
 *
 * The freeze belongs to the run that took it (`owner`) and has a lease (RESHARD_FREEZE_LEASE_MS)
 * the run renews while it works. A run that fails or is cancelled lifts it; one that is gone
 * (terminated, its worker dead for longer than the lease) leaves it to expire, and the drains lift
 * it themselves (outbox/shards.ts, liftExpiredFreeze). Once the split has begun rewriting the
 * store's positions (`splitting`, committed first) only finishing it is safe: nothing lifts that
 * freeze, and the next run (any owner) finishes the split, writing the same positions again.
 *
 * Every step can be run again after a crash: a freeze already in place is kept (or adopted from a
 * run that is gone), and the split writes the same positions from the same cursors.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { keptAlive } from '../kept-alive';
import type pg from 'pg';
import type { Config } from '../../config';
import { withTransaction } from '../../db/transaction';
import { parseSnapshot, snapshotCovers } from '../../db/pg-snapshot';
import type { PartitionKeys, StoreKeys } from '../../store/keys';
import type { StoreRedis } from '../../store/redis-client';
import { splitStorePosition, type DeliveryPosition } from '../../store/store-position';
import { onEachNode } from '../../store/redis-client';
import { FIELD } from '../../store/names';
import {
  adoptFreeze,
  drainShards,
  ensureConsumer,
  liftOwnFreeze,
  lockAllShards,
  markSplitting,
  releaseLeasesOf,
  renewFreeze,
  stampRoutePartitions,
  switchDrainLayout,
  takeFreeze,
  transactionsOlderThanRoutes,
  waitForDrainLock,
  MAX_DRAIN_SHARDS,
  readCursor,
  readDrainLayout,
  setRoutePartitions,
  shardKeys,
  cursorOfPartition,
  type DrainLayout,
  type DrainShard,
} from '../../outbox';
import { drainBatch } from './drain-batch';

export interface ReshardDeps {
  pool: pg.Pool;
  redis: StoreRedis;
  /** The whole store. */
  keys: StoreKeys;
  config: Config;
  /** Progress lines (one per step, and the catch-up's state every few seconds). */
  progress?: (line: string) => void;
  /** Called after each shard's batch and every round of the catch-up (the activity heartbeats with it; a cancellation throws from it). */
  heartbeat?: (details: CatchUpProgress) => void;
}

export interface CatchUpProgress {
  /** Old shards not yet at the freeze snapshot (within a round: those found so far). */
  waiting: number[];
  drivenBatches: number;
  /** The shard whose batch was just driven (a heartbeat within a round). */
  shard?: number;
}

export interface ReshardResult {
  from: number;
  to: number;
  /** The snapshot the shards met at; null when nothing changed. */
  frozenAt: string | null;
  /** Batches this process drove for shards no drain was running for. */
  drivenBatches: number;
  /** The first batch number of the new shards. */
  firstBatch: string | null;
  ms: number;
}

/** A re-split that cannot go on (refused, or the freeze changed hands): no retry helps. */
export class ReshardError extends Error {
  override name = 'ReshardError';
}

/** Transactions that may still write rows routed by an older partition count are open. */
class OlderTransactionsOpen extends ReshardError {}

/** The split failed after it had rewritten the store's positions: the drain stays frozen until it is run again (retryable). */
export class SplitInterrupted extends Error {
  override name = 'SplitInterrupted';
}

/** Checks the target count against the limits and the store; throws ReshardError. */
export function checkShardCount(shards: number, partitions: number): void {
  if (!Number.isInteger(shards) || shards < 1 || shards > MAX_DRAIN_SHARDS)
    throw new ReshardError(`--shards must be an integer from 1 to ${MAX_DRAIN_SHARDS}, got ${shards}`);
  if (shards > partitions)
    throw new ReshardError(
      `${shards} drain shards need at least ${shards} store partitions (STORE_PARTITIONS is ${partitions}): each shard owns whole partitions`,
    );
}

export type FreezeOutcome =
  { kind: 'unchanged'; shards: number } | { kind: 'frozen'; from: number; snap: string; at: number };

/**
 * Step 1, taken by `owner`: the freeze (kept if `owner` holds it already, adopted if its holder is
 * gone), or `unchanged` when the install already drains with `shards` shards and nothing is frozen.
 */
export async function freezeForReshard(deps: ReshardDeps, shards: number, owner: string): Promise<FreezeOutcome> {
  checkShardCount(shards, deps.keys.partitions.length);
  const before = await readDrainLayout(deps.pool);
  if (before.shards === shards && !before.frozen) return { kind: 'unchanged', shards };
  // Transactions older than a change of the routes' partition count end by themselves: wait a few
  // seconds for them before giving up.
  for (let attempt = 1; ; attempt++) {
    try {
      const frozen = (await freeze(deps, shards, owner)).frozen!;
      return { kind: 'frozen', from: (await readDrainLayout(deps.pool)).shards, snap: frozen.snap, at: frozen.at };
    } catch (err) {
      if (!(err instanceof OlderTransactionsOpen) || attempt >= 20) throw err;
      await sleep(250);
    }
  }
}

/**
 * The whole re-split in this process, through the same steps the workflow runs (the benchmark and
 * tests use it; operators start the workflow). An error lifts the freeze unless the split began.
 */
export async function reshardDrain(
  deps: ReshardDeps,
  shards: number,
  opts: {
    timeoutMs?: number;
    /** Tests: a fault between the catch-up and the split (a Redis restored meanwhile). */
    beforeSplit?: () => Promise<void>;
    owner?: string;
  } = {},
): Promise<ReshardResult> {
  const t0 = Date.now();
  const say = deps.progress ?? (() => undefined);
  const owner = opts.owner ?? `in-process/${process.pid}/${t0}`;
  const frozen = await freezeForReshard(deps, shards, owner);
  if (frozen.kind === 'unchanged')
    return { from: shards, to: shards, frozenAt: null, drivenBatches: 0, firstBatch: null, ms: Date.now() - t0 };
  say(`froze the ${frozen.from} drain shard(s) at snapshot ${frozen.snap}`);
  try {
    const drivenBatches = await catchUpToFreeze(deps, frozen.snap, owner, opts.timeoutMs ?? 600_000);
    await opts.beforeSplit?.();
    const firstBatch = await splitAtFreeze(deps, frozen.snap, shards, owner);
    say(`re-split: ${frozen.from} -> ${shards} drain shard(s), first batch ${firstBatch}`);
    return { from: frozen.from, to: shards, frozenAt: frozen.snap, drivenBatches, firstBatch, ms: Date.now() - t0 };
  } catch (err) {
    // Never leave the drain frozen (freshness stops while it is), unless the split began.
    if (await liftFreeze(deps, owner)) say('freeze lifted: the drain goes on with the old number of shards');
    throw err;
  }
}

/**
 * Lifts the freeze `owner` holds, unless its split has begun rewriting the store's positions (the
 * old shards would then take the new positions for a store ahead of them: only finishing the
 * split is safe). Returns whether it lifted it.
 */
export async function liftFreeze(deps: Pick<ReshardDeps, 'pool'>, owner: string): Promise<boolean> {
  return liftOwnFreeze(deps.pool, owner);
}

/** Renews the freeze's lease; throws ReshardError when `owner` no longer holds that freeze. */
async function keepFreeze(deps: ReshardDeps, owner: string, snap: string, client: pg.ClientBase | pg.Pool = deps.pool) {
  if (!(await renewFreeze(client, owner, snap, deps.config.RESHARD_FREEZE_LEASE_MS)))
    throw new ReshardError(
      `the drain is no longer frozen at ${snap} by this re-split (${owner}): its lease ran out and the drains lifted it, or another re-split took over; run the command again`,
    );
}

/** Step 1: the freeze snapshot, taken under every shard's lock (kept if `owner` holds it, adopted if its holder is gone). */
async function freeze(deps: ReshardDeps, shards: number, owner: string): Promise<DrainLayout> {
  const partitions = deps.keys.partitions.length;
  const before = await readDrainLayout(deps.pool);
  if (shards > 1 && !before.frozen && before.partitions !== partitions) {
    // Committed on its own, then stamped again: a transaction that starts after the stamp sees
    // the new count in every statement (one that started between the update and its commit
    // would not, and a stamp taken inside the update would let it pass the check below).
    await setRoutePartitions(deps.pool, partitions);
    await stampRoutePartitions(deps.pool);
  }
  return withTransaction(deps.pool, async (client) => {
    const { layout } = await lockAllShards(client);
    if (layout.frozen) {
      const { owner: holder, expired, splitting } = layout.frozen;
      // An interrupted split is finished by whoever comes next: it writes the same positions.
      if (holder !== owner && !expired && !splitting)
        throw new ReshardError(
          `another re-split (${holder}) holds the drain frozen at ${layout.frozen.snap} (${layout.shards} shard(s) now); wait for it, or for its lease to run out`,
        );
      await adoptFreeze(client, owner, deps.config.RESHARD_FREEZE_LEASE_MS);
      return readDrainLayout(client);
    }
    if (shards > 1) await routeNewRowsFor(client, partitions, layout);
    await takeFreeze(client, owner, deps.config.RESHARD_FREEZE_LEASE_MS, deps.config.CAPTURE_MODE === 'logical');
    return readDrainLayout(client);
  });
}

/**
 * Several shards read only the rows routed to them, so every row they will read must carry a
 * route of this partition count (set by freeze() if it differed): no transaction of this database
 * may be open that began before the count was set, with a transaction id or a snapshot (a
 * REPEATABLE READ one may not have written yet): its rows, routed with the old count, could commit
 * after the freeze. That one is waited for by trying again.
 */
/** Several shards need the outbox to route rows by the store's partition count. */
function checkRoutesMatchStore(routed: number, partitions: number): void {
  if (routed !== partitions)
    throw new ReshardError(
      `the outbox routes rows by ${routed} partition(s), the store has ${partitions}: a worker with another STORE_PARTITIONS changed it; run the command again`,
    );
}

async function routeNewRowsFor(client: pg.ClientBase, partitions: number, layout: DrainLayout): Promise<void> {
  checkRoutesMatchStore(layout.partitions, partitions);
  const older = await transactionsOlderThanRoutes(client);
  if (older > 0)
    throw new OlderTransactionsOpen(
      `${older} transaction(s) began before the outbox started routing rows by ${partitions} partitions; they may still write rows with the old routes. Run the command again when they have ended.`,
    );
}

/**
 * Step 2: every old shard drains up to the freeze; shards no workflow drains are driven here. The
 * freeze's lease is renewed every round; returns the batches driven here.
 */
export async function catchUpToFreeze(
  deps: ReshardDeps,
  target: string,
  freezeOwner: string,
  timeoutMs: number,
): Promise<number> {
  const say = deps.progress ?? (() => undefined);
  const layout = await readDrainLayout(deps.pool);
  const owner = `reshard-${process.pid}-${Date.now()}`;
  const deadline = Date.now() + timeoutMs;
  let driven = 0;
  let lastSay = 0;
  // a shard that never drained has no cursor row yet: it starts from nothing, as its drain would
  for (const shard of drainShards(layout.shards)) await ensureConsumer(deps.pool, shard.consumer);
  try {
    for (;;) {
      await keepFreeze(deps, freezeOwner, target);
      const waiting: DrainShard[] = [];
      /** The heartbeat's details: the shards found waiting so far, and the one just driven (if any). */
      const progress = (shard?: DrainShard): CatchUpProgress => ({
        waiting: waiting.map((w) => w.index),
        drivenBatches: driven,
        ...(shard ? { shard: shard.index } : {}),
      });
      for (const shard of drainShards(layout.shards)) {
        const c = await readCursor(deps.pool, shard.consumer);
        if (c.to === null && c.from === target) continue;
        // A running drain of this shard holds its lease and does the work itself (lease-lost,
        // busy); otherwise this process takes the lease and applies the shard's next chunk.
        // (kept alive while it runs: one batch of DRAIN_MAX_BATCH_SIZE rows on a loaded machine can
        // outlast the heartbeat timeout too; a cancellation is taken at the heartbeat after it)
        const beat = () => {
          try {
            deps.heartbeat?.(progress(shard));
          } catch {
            // cancelled: thrown by the heartbeat after the batch
          }
        };
        const r = await keptAlive(
          drainBatch({ ...deps, shard }, { owner, maxRows: deps.config.DRAIN_MAX_BATCH_SIZE, waitMs: 0 }),
          beat,
          1_000,
        );
        if (r.outcome === 'applied' || r.outcome === 'repaired') driven++;
        if (!(r.frozen || (r.cursor.to === null && r.cursor.from === target))) waiting.push(shard);
        // after each shard's batch, not once a round: a round of full batches, one per shard, can
        // outlast the 5-s heartbeat timeout, and each timed-out attempt started over as a new
        // owner that found the shards' leases still held by the last
        deps.heartbeat?.(progress(shard));
      }
      deps.heartbeat?.(progress());
      if (waiting.length === 0) return driven;
      if (Date.now() > deadline)
        throw new ReshardError(
          `drain shard(s) ${waiting.map((s) => s.index).join(', ')} did not reach the freeze snapshot within ${Math.round(timeoutMs / 1000)} s`,
        );
      if (Date.now() - lastSay > 2_000) {
        lastSay = Date.now();
        say(`waiting for ${waiting.length} shard(s) to reach the freeze snapshot (${driven} batch(es) applied here)`);
      }
      await sleep(deps.config.DRAIN_POLL_MS);
    }
  } finally {
    await releaseLeasesOf(deps.pool, owner);
  }
}

/**
 * The shard's partitions whose applied position is neither the cursor's last delivered row nor the
 * position an interrupted earlier split wrote (the same one this split writes), and those marked
 * by a rebuild that never ended (store/rebuild.ts): the split's position reset would remove the
 * mark and leave what the rebuild had not emptied yet.
 */
async function partitionsOffCursor(
  deps: ReshardDeps,
  shard: DrainShard,
  last: DeliveryPosition,
  planned: DeliveryPosition,
): Promise<number[]> {
  const partitions = shardKeys(deps.keys, shard).partitions;
  const at = await appliedPositions(deps, partitions);
  return partitions.filter((_, i) => !at[i](last) && !at[i](planned)).map((p) => p.index);
}

/**
 * For each partition, whether its applied position is exactly a given one: never while a rebuild
 * marks it, nor while a TRUNCATE's emptying does (at the freeze every batch is complete, so a
 * mark left is a Redis back from a file written before that emptying: FIELD.truncatePending).
 */
async function appliedPositions(
  deps: ReshardDeps,
  partitions: readonly PartitionKeys[],
): Promise<((p: DeliveryPosition) => boolean)[]> {
  const replies = await onEachNode(
    deps.redis,
    partitions,
    (p) => p.pos,
    (pipeline, p) =>
      void pipeline.hmget(
        p.pos,
        FIELD.appliedBatch,
        FIELD.appliedTxid,
        FIELD.appliedId,
        FIELD.rebuilding,
        FIELD.truncatePending,
      ),
  );
  return replies.map((r) => {
    const [lb, lt, li, rebuilding, truncating] = r as (string | null)[];
    return (p: DeliveryPosition) =>
      rebuilding === null && truncating === null && lb === p.batch && lt === p.txid && li === p.id;
  });
}

/**
 * Step 3: the switch, in one transaction under every old and new shard's lock, after a transaction
 * of its own has marked the freeze `splitting` (so nothing lifts it once positions are rewritten).
 * Returns the new shards' first batch number.
 */
export async function splitAtFreeze(deps: ReshardDeps, snap: string, shards: number, owner: string): Promise<string> {
  checkShardCount(shards, deps.keys.partitions.length);
  const step = await withTransaction(deps.pool, async (client) => {
    const held = await lockAllShards(client);
    // A retry of a switch that committed (its attempt's completion was lost: the worker died, or the
    // attempt timed out while committing): done. Refused, the workflow failed before putting the
    // new layout's schedules in place, and nothing drained.
    if (switchedAt(held, snap, shards)) return { done: lowestBatch(held), layout: null };
    if (held.layout.frozen?.snap !== snap || held.layout.frozen.owner !== owner)
      throw new ReshardError(
        `the drain is no longer frozen at ${snap} by this re-split (${owner}): its lease ran out, or another re-split took over; run the command again`,
      );
    if (!held.layout.frozen.splitting) {
      const { refused } = await splitPlan(deps, held, snap);
      if (refused) throw refused;
    }
    await keepFreeze(deps, owner, snap, client);
    await markSplitting(client, true);
    return { done: null, layout: held.layout };
  });
  if (step.done !== null) return step.done;
  const layout = step.layout!;
  let positionsWritten = false;
  try {
    return await switchLayout(deps, layout, shards, () => (positionsWritten = true));
  } catch (err) {
    if (!positionsWritten) {
      // nothing rewritten by this attempt: unless an earlier one did, the freeze may be lifted again
      await clearSplittingIfUntouched(deps, snap, owner).catch(() => undefined);
      throw err;
    }
    throw new SplitInterrupted(
      `the re-split stopped after rewriting the store's positions (${(err as Error).message}): the drain stays frozen; run the command again to finish it (it writes the same positions)`,
      { cause: err },
    );
  }
}

/** Is the layout the split's, unfrozen, with every shard's cursor at or past the freeze snapshot? */
function switchedAt(held: Awaited<ReturnType<typeof lockAllShards>>, snap: string, shards: number): boolean {
  if (held.layout.frozen || held.layout.shards !== shards) return false;
  const freeze = parseSnapshot(snap);
  return held.shards.every(({ cursor }) => cursor.from === snap || snapshotCovers(parseSnapshot(cursor.from), freeze));
}

const lowestBatch = (held: Awaited<ReturnType<typeof lockAllShards>>): string =>
  String(
    held.shards.reduce(
      (min, { cursor }) => (BigInt(cursor.batch) < min ? BigInt(cursor.batch) : min),
      BigInt(held.shards[0]!.cursor.batch),
    ),
  );

/**
 * The split's plan from the held cursors: the new shards' first batch number (above every number an
 * old shard used, so every load counter's position guard lets the new shards' deltas through and
 * none of their batches can be mistaken for an old one), the position every partition gets, and
 * why the split cannot go on, if it cannot: a shard not at the freeze, or a partition that does not
 * hold what its shard applied (the positions are about to be overwritten, so a partition that lost
 * writes, a Redis restored from an older file during the freeze, when frozen shards check nothing,
 * would never be found out).
 */
async function splitPlan(
  deps: ReshardDeps,
  held: Awaited<ReturnType<typeof lockAllShards>>,
  snap: string,
  /** false: partitions are not checked (the switch checks each as it rewrites it, and rebuilds a lost one). */
  checkPartitions = true,
): Promise<{ batch: string; last: DeliveryPosition; refused: ReshardError | null }> {
  let next = 1n;
  for (const { shard, cursor } of held.shards) {
    if (cursor.to !== null || cursor.from !== snap) {
      const refused = new ReshardError(
        `drain shard ${shard.index} is not at the freeze snapshot; run the command again`,
      );
      return { batch: '', last: { batch: '', txid: '0', id: '0' }, refused };
    }
    if (BigInt(cursor.batch) + 1n > next) next = BigInt(cursor.batch) + 1n;
  }
  const last = { batch: String(next - 1n), txid: '0', id: '0' };
  if (!checkPartitions) return { batch: String(next), last, refused: null };
  for (const { shard, cursor } of held.shards) {
    const lost = await partitionsOffCursor(deps, shard, cursor.last, last);
    if (lost.length)
      return {
        batch: String(next),
        last,
        refused: new ReshardError(
          `store partition(s) ${lost.join(', ')} do not hold what drain shard ${shard.index} applied (Redis lost writes?); the drain repairs that once the freeze is lifted: run the command again when \`ops status\` shows the store complete`,
        ),
      };
  }
  return { batch: String(next), last, refused: null };
}

/**
 * Each partition's new position, written as it is only over what its old shard applied or this
 * split's own position (one Lua call per partition: store/lua/split-position.lua). A partition that
 * lost writes (its node failed over to a replica behind it, or restarted from an older file,
 * between the plan and the write; or during the freeze, when frozen shards check nothing) gets it
 * marked for a rebuild, its epoch gone: its reads are stale from then on, and its new shard's
 * first position check rebuilds it. Given the new position over data it lacks, it would have been
 * taken for complete and lost those changes for good; refused, the split could never finish.
 */
async function rewritePositions(
  deps: ReshardDeps,
  held: Awaited<ReturnType<typeof lockAllShards>>,
  planned: DeliveryPosition,
): Promise<void> {
  const lost: number[] = [];
  for (const p of deps.keys.partitions) {
    const old = cursorOfPartition(held, p.index).last;
    if (!(await splitStorePosition(deps.redis, p, old, planned))) lost.push(p.index);
  }
  if (lost.length)
    deps.progress?.(
      `WARNING: store partition(s) ${lost.join(', ')} do not hold what their drain shard applied (Redis lost writes during the split): marked for a REBUILD, which their new shard runs (emptied, then backfilled; their reads are stale until done)`,
    );
}

/**
 * After a split that failed before rewriting positions: if no partition holds the split's position
 * (no earlier attempt wrote it either), the freeze can be lifted again.
 */
async function clearSplittingIfUntouched(deps: ReshardDeps, snap: string, owner: string): Promise<void> {
  await withTransaction(deps.pool, async (client) => {
    const held = await lockAllShards(client);
    if (held.layout.frozen?.snap !== snap || held.layout.frozen.owner !== owner) return;
    const plan = await splitPlan(deps, held, snap);
    if (!plan.batch) return;
    if ((await appliedPositions(deps, deps.keys.partitions)).some((at) => at(plan.last))) return;
    await markSplitting(client, false);
  });
}

async function switchLayout(
  deps: ReshardDeps,
  layout: DrainLayout,
  shards: number,
  writingPositions: () => void,
): Promise<string> {
  return withTransaction(deps.pool, async (client) => {
    const held = await lockAllShards(client);
    if (
      held.layout.shards !== layout.shards ||
      held.layout.frozen?.snap !== layout.frozen?.snap ||
      !held.layout.frozen?.splitting
    )
      throw new ReshardError('the drain layout changed while re-splitting (another reshard?); run the command again');
    const fresh = drainShards(shards);
    for (const shard of fresh) await waitForDrainLock(client, shard.consumer);
    const target = layout.frozen!;
    if (shards > 1) checkRoutesMatchStore(held.layout.partitions, deps.keys.partitions.length);
    const { batch, last, refused } = await splitPlan(deps, held, target.snap, false);
    if (refused) throw refused;
    // Every partition: the new shard's position, no claim. A crash (or a failed commit) after this
    // leaves the old layout frozen at S, whose shards never check positions while frozen; the
    // next run of the command accepts these positions and writes the same again.
    writingPositions();
    await rewritePositions(deps, held, last);
    const old = held.shards.map((h) => h.shard);
    await switchDrainLayout(client, { fresh, old, batch, lastBatch: last.batch, snap: target.snap, at: target.at });
    return batch;
  });
}
