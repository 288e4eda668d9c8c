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
 * a Temporal round trip per poll.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { cancellationSignal, heartbeat } from '@temporalio/activity';
import type { StoreRedis } from '../../store/redis-client';
import type pg from 'pg';
import { Config } from '../../config';
import { FeatureUpdate } from '../../features/definitions';
import { featureUpdatesFrom, OutboxRow } from '../../features/from-source';
import { applyUpdates, ApplyResult } from '../../store/apply';
import { withTransaction } from '../../db/transaction';
import { applyOptions } from '../apply-options';
import { parseSnapshot, snapshotCovers } from '../../db/pg-snapshot';
import {
  checkStorePosition,
  PositionCheck,
  readStorePosition,
  rememberTruncates,
  truncatesRemembered,
} from '../../store/store-position';

type Divergence = Exclude<PositionCheck, { status: 'ok' }>;
import { rebuildStore } from '../../store/rebuild';
import { pendingRebuilds } from '../../store/rebuild-requests';
import { StoreKeys } from '../../store/keys';
import { markCaughtUp, recordApplied } from '../../store/watermark';
import type { DrainMetrics } from '../metrics';
import { faultPoint } from './fault-injection';
import {
  acquireLease,
  advanceCursor,
  BATCH_START,
  ConsumerCursor,
  drainLockName,
  leaseHolder,
  Position,
  readCursor,
  readCursorAndSnapshot,
  readDelta,
  readDrainLayout,
  liftExpiredFreeze,
  saveCursor,
  shardKeys,
  shardRoutes,
  SINGLE_DRAIN,
  type DrainShard,
} from '../../outbox';

export interface DrainDeps {
  pool: pg.Pool;
  redis: StoreRedis;
  keys: StoreKeys;
  config: Config;
  /** Which drain shard this is (outbox/shards.ts); the single drain by default. */
  shard?: DrainShard;
  /** The cursor row, when not the shard's own (tests). */
  consumer?: string;
  log?: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
  metrics?: DrainMetrics;
}

export interface DrainBatchInput {
  /** The workflow id of the drain run; the lease names it. */
  owner: string;
  maxRows?: number;
  /** How long to wait for new rows when there are none. */
  waitMs?: number;
}

export interface DrainBatchResult {
  /**
   * repaired: the store was found behind or ahead of the cursor and was re-aligned (see
   * store/store-position.ts). retired: DRAIN_SHARDS changed and this shard no longer exists.
   */
  outcome: 'applied' | 'idle' | 'lease-lost' | 'busy' | 'repaired' | 'retired';
  rows: number;
  /** Store operations that changed something (newer than what Redis held). */
  applied: number;
  deadLetters: number;
  cursor: ConsumerCursor;
  /** The batch is complete: every change committed before its snapshot was taken is applied. */
  caughtUp: boolean;
  /** Newest source change time in the batch (ms since epoch), for freshness. */
  newestSourceMs: number | null;
  holder?: string;
  /** SKUs made active/paused again after their tombstone expired, and requests still pending: their stock needs a rebuild. */
  rebuildSkus?: string[];
  /** The store has no epoch (lost its data, or never backfilled): a backfill must restore it. */
  storeIncomplete?: boolean;
  /** DRAIN_SHARDS is changing: this shard has drained up to the freeze snapshot and waits there. */
  frozen?: boolean;
}

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
  const maxRows = input.maxRows ?? deps.config.DRAIN_BATCH_SIZE;
  const waitUntil = Date.now() + (input.waitMs ?? 0);
  const rebuilds = new Set<string>(); // raised by any poll of this call, reported at its end
  for (;;) {
    const result = await tryOneBatch(deps, input.owner, maxRows);
    for (const sku of result.rebuildSkus ?? []) rebuilds.add(sku);
    // busy: a backfill holds the drain lock for a moment; wait like an idle poll.
    const waiting = result.outcome === 'idle' || result.outcome === 'busy';
    // cancelled: the workflow was cancelled or terminated (learnt through a heartbeat): stop waiting
    if (!waiting || Date.now() + deps.config.DRAIN_POLL_MS > waitUntil || cancellationSignal().aborted)
      return rebuilds.size ? { ...result, rebuildSkus: [...rebuilds] } : result;
    heartbeat(result.cursor);
    await sleep(deps.config.DRAIN_POLL_MS);
  }
}

/**
 * One pass: inside one transaction (which holds the drain's lock, and whose commit moves the
 * cursor) the next chunk is read and applied; after the commit, what the store and the workflow
 * learn from it. Each step is a function below.
 */
/** The drain's clients, as one shard sees them. */
type ShardDeps = DrainDeps & {
  shard: DrainShard;
  allKeys: StoreKeys;
  /** The outbox routes the shard reads (null: every row). */
  routes: number[] | null;
};

async function tryOneBatch(deps: ShardDeps, owner: string, maxRows: number): Promise<DrainBatchResult> {
  const t0 = performance.now();
  const step = await withTransaction(deps.pool, (client) => applyNextChunk(deps, client, owner, maxRows));
  if ('result' in step) return step.result;
  if ('idle' in step) return afterIdle(deps, step.idle);
  faultPoint('after-commit');
  return afterApplied(deps, step.applied, t0);
}

/** A chunk applied and committed: what the post-commit steps need. */
interface AppliedChunk {
  rows: OutboxRow[];
  next: ConsumerCursor;
  complete: boolean;
  target: Target;
  applied: ApplyResult;
  dead: Map<number, string>;
  applySeconds: number;
  visibleAt: number;
  newestSourceMs: number;
}

type Target = { snap: string; at: number | null };

type ChunkStep =
  { result: DrainBatchResult } | { idle: { next: ConsumerCursor; target: Target } } | { applied: AppliedChunk };

async function applyNextChunk(
  deps: ShardDeps,
  client: pg.PoolClient,
  owner: string,
  maxRows: number,
): Promise<ChunkStep> {
  const consumer = deps.consumer ?? deps.shard.consumer;
  const claimed = await claimDrain(deps, client, consumer, owner);
  if ('refused' in claimed) return { result: claimed.refused };

  // The batch: rows visible in the target snapshot and not in the cursor's. A batch already in
  // progress (delivered in chunks) keeps its target; otherwise the target is a snapshot taken now,
  // or, while DRAIN_SHARDS changes, the freeze snapshot every shard meets at (outbox/shards.ts).
  const { cursor, now } = await readCursorAndSnapshot(client, consumer);
  const frozen = claimed.frozen;
  // At the freeze: wait there. Past it (it cannot happen: the freeze is taken under this shard's
  // lock, and the layout is read under it): never move back, which would deliver rows again; the
  // re-split finds this shard not at the freeze and gives up, lifting it.
  if (
    frozen &&
    cursor.to === null &&
    (cursor.from === frozen.snap || !snapshotCovers(parseSnapshot(frozen.snap), parseSnapshot(cursor.from)))
  )
    return { result: { outcome: 'idle', ...emptyResult(cursor), caughtUp: true, frozen: true } };
  const checked = await checkPosition(deps, cursor, frozen ?? now);
  if ('divergence' in checked) {
    const resolved = await resolveDivergence(deps, client, consumer, cursor, checked.divergence);
    return {
      result: {
        outcome: 'repaired',
        ...emptyResult(resolved.cursor),
        ...(resolved.rebuilt ? { storeIncomplete: true } : {}),
      },
    };
  }
  const target = checked.target;
  const chunk = (await takePrefetched(deps.pool, consumer, cursor.from, target.snap, cursor.position)) ?? {
    rows: await readDelta(client, {
      from: cursor.from,
      to: target.snap,
      after: cursor.position,
      limit: maxRows,
      routes: deps.routes,
    }),
    limit: maxRows,
  };
  const rows = chunk.rows;
  const { next, complete } = advanceCursor(cursor, target, rows, chunk.limit);
  const startedBatch = cursor.position.txid !== BATCH_START.txid || cursor.position.id !== BATCH_START.id;

  if (rows.length === 0) {
    // Nothing new: the snapshot still moves on (so the next delta starts from it), and every
    // change committed before it was taken is known to be in the store.
    if (startedBatch) await applyTruncates(deps, cursor, target.snap, next, []);
    await saveCursor(client, consumer, next);
    if (startedBatch) await logAppliedSnapshot(client, deps.shard, cursor.batch, target, Date.now());
    return { idle: { next, target } };
  }

  // Working off a backlog: read the next chunk on another connection while this one is applied
  // to Redis (PostgreSQL and Redis then use both cores). The rows of a chunk are fixed by
  // (cursor snapshot, target, position), so the prefetched rows are the ones the next call would
  // read; it uses them only if its cursor is exactly that.
  if (!complete)
    prefetch(deps.pool, consumer, {
      from: cursor.from,
      to: target.snap,
      after: next.position,
      limit: maxRows,
      routes: deps.routes,
    });

  // A TRUNCATE in this chunk is applied when the batch is complete (applyTruncates); until then
  // the store remembers it beside its position, so a crash between chunks cannot forget it (and
  // a store that loses it loses the position too, and is re-delivered the row).
  const truncatedHere = [...new Set(rows.filter((r) => r.op === 'T').map((r) => r.tbl))];
  if (truncatedHere.length && !complete) await rememberTruncates(deps.redis, deps.keys, cursor.batch, truncatedHere);

  const { updates, dead, newestSourceMs } = featureUpdatesOf(deps.keys, rows);
  const tApply = performance.now();
  const applied = await applyUpdates(deps.redis, deps.keys, updates, {
    ...applyOptions(deps.config),
    batch: cursor.batch,
    position: next.last, // the store's applied position moves in the same call as the changes
    checked: cursor.last, // and only in a partition that still holds what the check saw
  });
  const applySeconds = (performance.now() - tApply) / 1000;
  faultPoint('after-apply');
  const visibleAt = Date.now();
  await deadLetterFailures(client, consumer, rows, dead, applied);
  if (complete) await applyTruncates(deps, cursor, target.snap, next, truncatedHere, startedBatch);
  await saveCursor(client, consumer, next);
  if (complete) await logAppliedSnapshot(client, deps.shard, cursor.batch, target, visibleAt);
  await acquireLease(client, deps.shard.lease, owner, deps.config.DRAIN_LEASE_TTL_MS);
  return { applied: { rows, next, complete, target, applied, dead, applySeconds, visibleAt, newestSourceMs } };
}

/**
 * The shard's lock (hard mutual exclusion for the apply: held until commit or rollback, released
 * by the server if this process dies; it assigns no transaction id), the shard layout (in the same
 * statement) and the lease. Says whether this run may go on, and the freeze snapshot if DRAIN_SHARDS
 * is changing.
 */
async function claimDrain(
  deps: ShardDeps,
  client: pg.PoolClient,
  consumer: string,
  owner: string,
): Promise<{ refused: DrainBatchResult } | { frozen: Target | null }> {
  const lock = await client.query('select pg_try_advisory_xact_lock(hashtext($1)) as ok', [drainLockName(consumer)]);
  if (!lock.rows[0].ok) return { refused: { outcome: 'busy', ...emptyResult(await readCursor(client, consumer)) } };
  // The layout is read once the lock is held, by a statement of its own: its snapshot then sees a
  // freeze or a re-split that committed before the lock was free (a statement's snapshot is taken
  // before the statement runs, and a commit is visible before its locks are released).
  const layout = await readDrainLayout(client);
  if (layout.shards !== deps.shard.count)
    return { refused: { outcome: 'retired', ...emptyResult(await readCursor(client, consumer)) } };
  if (deps.shard.count > 1 && layout.partitions !== deps.allKeys.partitions.length)
    throw new Error(
      `the outbox routes rows by ${layout.partitions} store partition(s) but this worker's STORE_PARTITIONS is ${deps.allKeys.partitions.length}: with ${layout.shards} drain shards, every worker must use the same STORE_PARTITIONS (README, "Drain shards")`,
    );
  const holder = await leaseHolder(client, deps.shard.lease);
  if (holder !== null && holder !== owner)
    return { refused: { outcome: 'lease-lost', ...emptyResult(await readCursor(client, consumer)), holder } };
  // A freeze whose re-split run is gone (its lease ran out) would stop every shard for good.
  if (layout.frozen?.expired && !layout.frozen.splitting && (await liftExpiredFreeze(client))) {
    deps.log?.(
      'warn',
      `lifted the drain freeze of a re-split that is gone (${layout.frozen.owner ?? 'no owner recorded'}; its lease ran out): the drain goes on with ${layout.shards} shard(s)`,
    );
    return { frozen: null };
  }
  return { frozen: layout.frozen };
}

/**
 * The store proves what it holds: its own applied position is compared with the cursor's, and a
 * new batch claims its target there first, so a retry after a crash re-reads exactly the rows an
 * earlier attempt may have applied (store/store-position.ts). Returns the batch's target, or how
 * the store diverged.
 */
async function checkPosition(
  deps: DrainDeps,
  cursor: ConsumerCursor,
  now: { snap: string; at: number | null },
): Promise<{ target: Target } | { divergence: Divergence }> {
  const check = await checkStorePosition(deps.redis, deps.keys, {
    batch: cursor.batch,
    from: cursor.from,
    proposed: cursor.to === null ? { snap: now.snap, at: now.at ?? Date.now() } : null,
    last: cursor.last,
  });
  if (check.status !== 'ok') return { divergence: check };
  // Transaction ids went back below the claimed target: PostgreSQL was restored.
  if (cursor.to === null && parseSnapshot(check.target.snap).xmax > parseSnapshot(now.snap).xmax) {
    return { divergence: { status: 'ahead', store: await readStorePosition(deps.redis, deps.keys) } };
  }
  return { target: cursor.to !== null ? { snap: cursor.to, at: cursor.toAt } : check.target };
}

/** The feature updates of a chunk's rows; a row that cannot be turned into updates is a dead letter. */
function featureUpdatesOf(
  keys: StoreKeys,
  rows: OutboxRow[],
): {
  updates: { update: FeatureUpdate; source: number }[];
  dead: Map<number, string>;
  newestSourceMs: number;
} {
  const updates: { update: FeatureUpdate; source: number }[] = [];
  const dead = new Map<number, string>();
  let newestSourceMs = 0;
  rows.forEach((row, source) => {
    newestSourceMs = Math.max(newestSourceMs, row.created_ms);
    if (row.op === 'T') return;
    try {
      const mine = featureUpdatesFrom(row);
      // A drain shard applies only its own partitions' SKUs. The outbox routes rows by the same
      // SKU id, so another SKU here is a row written by hand with a key that disagrees with its
      // image: a dead letter, rather than a batch that can never be applied.
      if (keys.partial)
        for (const u of mine)
          if ('sku' in u && !keys.partitions.includes(keys.ofSku(u.sku)))
            throw new Error(
              `row of SKU ${JSON.stringify(u.sku)} (store partition ${keys.ofSku(u.sku).index}) reached a drain shard that does not own it: its key and image disagree`,
            );
      for (const update of mine) updates.push({ update, source });
    } catch (err) {
      dead.set(source, (err as Error).message);
    }
  });
  return { updates, dead, newestSourceMs };
}

/**
 * Rows that could not be turned into updates, and changes Redis rejected, go to the dead letters
 * in the cursor's transaction. Of a change whose operations Redis partly rejected, the rest was
 * applied: the dead letter lists the load counters still owed, so a retry adds exactly those.
 */
async function deadLetterFailures(
  client: pg.PoolClient,
  consumer: string,
  rows: OutboxRow[],
  dead: Map<number, string>,
  applied: ApplyResult,
): Promise<void> {
  for (const f of applied.failures) if (!dead.has(f.source)) dead.set(f.source, f.error);
  if (dead.size === 0) return;
  const pendingLoads = new Map<number, string[]>();
  for (const f of applied.failures)
    if (f.kind === 'loadDelta') pendingLoads.set(f.source, [...(pendingLoads.get(f.source) ?? []), f.key]);
  const partlyApplied = new Set(applied.failures.map((f) => f.source));
  const items = [...dead].map(([i, error]) => ({
    row: rows[i],
    error,
    pendingLoads: partlyApplied.has(i) ? (pendingLoads.get(i) ?? []) : null,
  }));
  await insertDeadLetters(client, consumer, items);
}

async function afterIdle(deps: DrainDeps, idle: { next: ConsumerCursor; target: Target }): Promise<DrainBatchResult> {
  const storeComplete =
    idle.target.at === null ? true : await markCaughtUp(deps.redis, deps.keys, idle.target.at, idle.next.last);
  const rebuildSkus = await rebuildRequests(deps, []);
  return {
    outcome: 'idle',
    ...emptyResult(idle.next),
    caughtUp: true,
    ...(rebuildSkus.length ? { rebuildSkus } : {}),
    ...(storeComplete ? {} : { storeIncomplete: true }),
  };
}

async function afterApplied(deps: DrainDeps, c: AppliedChunk, t0: number): Promise<DrainBatchResult> {
  // A SKU updated back to active/paused whose key had no lifecycle any more (the tombstone
  // expired, or the store lost it): its stock is not in the store. A brand-new SKU (insert)
  // needs nothing: its inventory rows arrive as changes of their own.
  const rebuildSkus = await rebuildRequests(
    deps,
    c.applied.rebuild.map((i) => c.rows[i].key),
  );
  deps.metrics?.batch(c.rows.length, (performance.now() - t0) / 1000, c.applySeconds);
  deps.metrics?.freshness(
    c.rows.map((r) => r.created_ms),
    c.visibleAt,
  );
  if (c.dead.size) deps.metrics?.deadLetters(c.dead.size);
  const storeComplete = await recordApplied(deps.redis, deps.keys, {
    newestSourceMs: c.newestSourceMs,
    appliedAt: Date.now(),
    caughtUpAt: c.complete ? c.target.at : null,
    applied: c.next.last,
  });
  if (c.dead.size)
    deps.log?.('warn', `drain sent ${c.dead.size} change(s) to dead letters`, { first: [...c.dead.values()][0] });
  return {
    outcome: 'applied',
    rows: c.rows.length,
    applied: c.applied.applied,
    deadLetters: c.dead.size,
    cursor: c.next,
    caughtUp: c.complete,
    newestSourceMs: c.newestSourceMs,
    ...(rebuildSkus.length ? { rebuildSkus } : {}),
    ...(storeComplete ? {} : { storeIncomplete: true }),
  };
}

interface Prefetch {
  key: string;
  limit: number;
  rows: Promise<OutboxRow[]>;
}
/**
 * One prefetched chunk per database (pool: snapshot texts are cluster-wide, databases are not) and
 * consumer (drain shards in one worker share the pool; each keeps its own).
 */
const prefetched = new WeakMap<pg.Pool, Map<string, Prefetch>>();

const prefetchKey = (consumer: string, from: string, to: string, after: Position) =>
  `${consumer} ${from} ${to} ${after.txid}:${after.id}`;

function prefetch(
  pool: pg.Pool,
  consumer: string,
  input: { from: string; to: string; after: Position; limit: number; routes: number[] | null },
): void {
  const rows = readDelta(pool, input);
  rows.catch(() => undefined); // a failed prefetch is just not used
  let byConsumer = prefetched.get(pool);
  if (!byConsumer) prefetched.set(pool, (byConsumer = new Map()));
  byConsumer.set(consumer, { key: prefetchKey(consumer, input.from, input.to, input.after), limit: input.limit, rows });
}

async function takePrefetched(
  pool: pg.Pool,
  consumer: string,
  from: string,
  to: string,
  after: Position,
): Promise<{ rows: OutboxRow[]; limit: number } | null> {
  const p = prefetched.get(pool)?.get(consumer);
  prefetched.get(pool)?.delete(consumer);
  if (!p || p.key !== prefetchKey(consumer, from, to, after)) return null;
  try {
    return { rows: await p.rows, limit: p.limit };
  } catch {
    return null;
  }
}

/**
 * The store and the cursor disagree about what the store holds.
 *   behind: re-deliver from the store's own position, when the outbox still holds it (compaction
 *           has not pruned past it): the cursor goes back to the store's claimed batch, at the
 *           position the store reached in it. Reads stay stale meanwhile: the watermark came back
 *           old together with the data.
 *   ahead, or behind past what the outbox holds: rebuild (empty the store, backfill). Loud.
 */
async function resolveDivergence(
  deps: DrainDeps,
  client: pg.PoolClient,
  consumer: string,
  cursor: ConsumerCursor,
  divergence: Divergence,
): Promise<{ cursor: ConsumerCursor; rebuilt: boolean }> {
  const { store } = divergence;
  if (divergence.status === 'partitions-behind') return rebuildLostPartitions(deps, cursor, divergence);
  const kind = divergence.status;
  const describe = `store applied ${JSON.stringify(store.applied)}, claimed ${JSON.stringify(store.claimed && { batch: store.claimed.batch })}; cursor last ${JSON.stringify(cursor.last)}, batch ${cursor.batch}`;
  if (kind === 'behind' && store.claimed && store.applied) {
    const floor = (await client.query(`select below::text as below from pipeline.outbox_floor`)).rows[0]?.below ?? '0';
    if (parseSnapshot(store.claimed.from).xmin >= BigInt(floor)) {
      const sameBatch = store.applied.batch === store.claimed.batch;
      const rewound: ConsumerCursor = {
        batch: store.claimed.batch,
        from: store.claimed.from,
        fromAt: null,
        to: store.claimed.target,
        toAt: store.claimed.at,
        position: sameBatch ? { txid: store.applied.txid, id: store.applied.id } : BATCH_START,
        last: store.applied,
      };
      await saveCursor(client, consumer, rewound);
      deps.log?.(
        'warn',
        `online store is BEHIND the drain cursor (Redis lost writes: restarted from an older file, or failed over); re-delivering from the store's own position`,
        { detail: describe },
      );
      deps.metrics?.divergence('behind');
      return { cursor: rewound, rebuilt: false };
    }
  }
  deps.log?.(
    'warn',
    `online store is ${kind === 'ahead' ? 'AHEAD of the source (PostgreSQL restored or failed over to a standby that was behind)' : 'BEHIND past what the outbox still holds'}: REBUILDING it (emptied, then backfilled; reads are stale until done)`,
    { detail: describe },
  );
  deps.metrics?.divergence(kind === 'ahead' ? 'ahead' : 'behind-rebuild');
  await rebuildStore(deps.redis, deps.keys, cursor);
  return { cursor, rebuilt: true };
}

/**
 * Some partitions of the store lost writes that the others kept (a cluster node failed over to a
 * replica that had not received them): those partitions alone are emptied and refilled by
 * `backfill-auto`, from the cursor's position and snapshot, keeping the claim of the batch in
 * progress. Reads of their SKUs say stale until then; the other partitions keep serving fresh.
 * (A rewind would re-deliver later batches under new numbers, which the partitions that kept them
 * could not tell apart from new changes: store/store-position.ts.)
 */
async function rebuildLostPartitions(
  deps: DrainDeps,
  cursor: ConsumerCursor,
  divergence: Extract<Divergence, { status: 'partitions-behind' }>,
): Promise<{ cursor: ConsumerCursor; rebuilt: boolean }> {
  const lost = divergence.partitions.map((i) => deps.keys.partitions[i]);
  deps.log?.(
    'warn',
    `online store partitions ${lost.map((p) => p.index).join(', ')} of ${deps.keys.count} are BEHIND the others (a Redis node lost writes: failed over to a lagging replica, or restarted from an older file): REBUILDING those partitions (reads of their SKUs are stale until done)`,
    { lowest: divergence.store.applied, cursor: cursor.last },
  );
  deps.metrics?.divergence('behind-rebuild');
  const claim =
    cursor.to !== null ? { batch: cursor.batch, from: cursor.from, target: cursor.to, at: cursor.toAt ?? 0 } : null;
  await rebuildStore(deps.redis, deps.keys, cursor, claim, lost);
  return { cursor, rebuilt: true };
}

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
 * data loss. A TRUNCATE met in an earlier chunk of the batch is remembered in the store's
 * position hash (fields tb, tt) until the batch completes; the rebuild clears it.
 */
async function applyTruncates(
  deps: DrainDeps,
  cursor: ConsumerCursor,
  target: string,
  next: ConsumerCursor,
  truncatedHere: string[],
  earlierChunks = true,
): Promise<void> {
  const truncated = new Set(truncatedHere);
  if (earlierChunks) {
    for (const t of await truncatesRemembered(deps.redis, deps.keys, cursor.batch)) truncated.add(t);
  }
  if (truncated.size === 0) return;
  const tables = [...truncated].map((t) => `shop.${t}`).join(', ');
  deps.log?.(
    'warn',
    `TRUNCATE of ${tables} captured: emptying the online store and refilling it from the source (reads are stale until the backfill is done)`,
    { batch: cursor.batch },
  );
  deps.metrics?.divergence('truncate');
  const claim = (await readStorePosition(deps.redis, deps.keys)).claimed;
  await rebuildStore(deps.redis, deps.keys, { last: next.last, from: target }, claim);
}

function emptyResult(cursor: ConsumerCursor) {
  return { rows: 0, applied: 0, deadLetters: 0, cursor, caughtUp: false, newestSourceMs: null };
}

/**
 * SKUs whose stock needs a rebuild: the ones this batch reactivated, and every request still
 * pending in the store (a worker that died after its commit, before starting the rebuild), looked
 * up at most every few seconds per worker.
 */
// per shard's view of the store (views are cached: one object per shard)
const lastPendingLookup = new WeakMap<StoreKeys, number>();
async function rebuildRequests(deps: DrainDeps, raised: string[]): Promise<string[]> {
  const now = Date.now();
  if (raised.length === 0 && now - (lastPendingLookup.get(deps.keys) ?? 0) < 5_000) return [];
  lastPendingLookup.set(deps.keys, now);
  return [...new Set([...raised, ...(await pendingRebuilds(deps.redis, deps.keys))])];
}

/** The drain's log of applied snapshots: the landing consumer learns from it when a change reached Redis. */
async function logAppliedSnapshot(
  client: pg.ClientBase,
  shard: DrainShard,
  batch: string,
  target: { snap: string; at: number | null },
  appliedAt: number,
): Promise<void> {
  await client.query(
    `insert into pipeline.drain_snapshots (shard, batch, snap, taken_at, applied_at)
     values ($5, $1, $2::pg_snapshot, to_timestamp(coalesce($3::float8, $4::float8) / 1000), to_timestamp($4::float8 / 1000))
     on conflict (shard, batch) do nothing`,
    [batch, target.snap, target.at, appliedAt, shard.index],
  );
}

async function insertDeadLetters(
  client: pg.ClientBase,
  consumer: string,
  items: { row: OutboxRow; error: string; pendingLoads: string[] | null }[],
): Promise<void> {
  // One statement for all of them; re-processing the same rows after a crash adds nothing.
  await client.query(
    `insert into pipeline.dead_letters (consumer, outbox_txid, outbox_id, tbl, op, key, image, old_image, error, pending_loads)
     select $1, x.txid::xid8, x.id::bigint, x.tbl, x.op, x.key, x.image, x.old_image, x.error, x.pending_loads
       from jsonb_to_recordset($2::jsonb) as x(txid text, id text, tbl text, op text, key text, image jsonb, old_image jsonb, error text, pending_loads jsonb)
     on conflict (consumer, outbox_txid, outbox_id) do nothing`,
    [
      consumer,
      JSON.stringify(
        items.map(({ row, error, pendingLoads }) => ({
          txid: row.txid,
          id: row.id,
          tbl: row.tbl,
          op: row.op,
          key: row.key,
          image: row.image,
          old_image: row.old_image,
          error,
          pending_loads: pendingLoads,
        })),
      ),
    ],
  );
}
