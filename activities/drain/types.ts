/**
 * What the drain batch's steps share: their clients (as one shard sees them), the activity's
 * input and result, and the states a chunk moves through.
 */
import type pg from 'pg';
import type { Config } from '../../config';
import type { OutboxRow } from '../../features/from-source';
import type { ConsumerCursor, DrainShard } from '../../outbox';
import type { ApplyResult } from '../../store/apply';
import type { StoreKeys } from '../../store/keys';
import type { StoreRedis } from '../../store/redis-client';
import type { DrainMetrics } from '../metrics';

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
  /** Aborted once the worker is shutting down: a drain activity ends after its batch in flight. */
  stopping?: AbortSignal;
}

export interface DrainBatchInput {
  /** The workflow id of the drain run; the lease names it. */
  owner: string;
  maxRows?: number;
  /** How long to wait for new rows when there are none (without a budget). */
  waitMs?: number;
  /**
   * Keep draining (batches back to back, idle polls) for this long, heartbeating after each pass
   * (DRAIN_ACTIVITY_BUDGET_MS). Absent: return after one applied batch.
   */
  budgetMs?: number;
  /** While batches come back full (a backlog), the batch size doubles up to this. */
  maxBatchRows?: number;
}

/** The running activity's heartbeat details: what it has done so far. */
export interface DrainProgress {
  batches: number;
  rows: number;
  caughtUp: boolean;
  newestSourceMs: number | null;
  cursor: ConsumerCursor;
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
  /**
   * Some pass of this activity found the store complete (an epoch): a backfill asked for earlier
   * is done, so a loss after it (storeIncomplete in the same or a later result) needs a new one.
   */
  storeWasComplete?: boolean;
  /** DRAIN_SHARDS is changing: this shard has drained up to the freeze snapshot and waits there. */
  frozen?: boolean;
  /** Batches applied by this activity (with a budget, several). */
  batches?: number;
  /** The batch size the next activity should start with. */
  batchSize?: number;
  /**
   * Not caught up: outbox rows this shard has not applied yet, for the Web UI, counted up to a cap
   * as `ops status` counts them (a snapshot delta in progress counts whole until it completes).
   */
  behindRows?: number;
  behindCapped?: boolean;
}

/** The drain's clients, as one shard sees them. */
export type ShardDeps = DrainDeps & {
  shard: DrainShard;
  allKeys: StoreKeys;
  /** The outbox routes the shard reads (null: every row). */
  routes: number[] | null;
};

/** The snapshot a batch delivers up to, and when it was taken (ms; null: unknown). */
export type Target = { snap: string; at: number | null };

/** A chunk applied and committed: what the post-commit steps need. */
export interface AppliedChunk {
  rows: OutboxRow[];
  next: ConsumerCursor;
  complete: boolean;
  target: Target;
  applied: ApplyResult;
  dead: Map<number, string>;
  applySeconds: number;
  visibleAt: number;
  newestSourceMs: number;
  /** The pipeline database's clock when the pass began (ms): the target's age is measured from it. */
  dbNowMs: number;
}

export function emptyResult(cursor: ConsumerCursor) {
  return { rows: 0, applied: 0, deadLetters: 0, cursor, caughtUp: false, newestSourceMs: null };
}
