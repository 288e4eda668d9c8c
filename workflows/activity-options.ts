/**
 * Activity options of every workflow, one named profile per kind of work, so timeouts and retry
 * policies are chosen by what an activity does and a failure no retry can fix is listed once.
 */
import { ActivityCancellationType, type ActivityOptions, type RetryPolicy } from '@temporalio/workflow';

import { CONFIGURATION_ERROR_TYPE } from '../config/error-types';

/** Failure types no activity retries. */
export const NON_RETRYABLE_ERROR_TYPES: readonly string[] = [CONFIGURATION_ERROR_TYPE];

/** Exponential backoff (doubling) that never retries NON_RETRYABLE_ERROR_TYPES. */
function backoff(policy: Pick<RetryPolicy, 'initialInterval' | 'maximumInterval' | 'maximumAttempts'>): RetryPolicy {
  return { ...policy, backoffCoefficient: 2, nonRetryableErrorTypes: [...NON_RETRYABLE_ERROR_TYPES] };
}

// Back off to at most 2 s: after PostgreSQL, Redis or the network comes back the drain is
// draining again within seconds, by itself; the schedule is only a watchdog.
const drainRetry = backoff({ initialInterval: '200 milliseconds', maximumInterval: '2 seconds' });

/** The drain's lease: one short query. */
export const drainLeaseActivity: ActivityOptions = { startToCloseTimeout: '30 seconds', retry: drainRetry };

/**
 * A drain activity: batches back to back for DRAIN_ACTIVITY_BUDGET_MS, heartbeating after them (at
 * most every 250 ms: activities/heartbeat-throttle.ts). The heartbeat timeout catches a dead worker quickly so the
 * work is retried elsewhere (it is idempotent).
 */
export const drainBatchActivity: ActivityOptions = {
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '5 seconds',
  // `ops pause` waits for the batch in flight to commit before the run releases the lease.
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: drainRetry,
};

/** Re-emitting one SKU's rows (sku-rebuild). */
export const skuRebuildActivity: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: backoff({ initialInterval: '500 milliseconds', maximumInterval: '30 seconds' }),
};

/**
 * Waiting for the drain to apply a rebuilt SKU's rows: short attempts (a check), retried every few
 * seconds while the drain is paused or behind, so a waiting rebuild holds no worker slot
 * (activities/lifecycle: APPLIED_WAIT_MS).
 */
export const skuRebuildAppliedActivity: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  heartbeatTimeout: '10 seconds',
  retry: backoff({ initialInterval: '1 second', maximumInterval: '5 seconds' }),
};

/**
 * A backfill step (plan, chunk, loads, finish): bounded by the chunk size, retried until it
 * succeeds. Each heartbeats every 5 s while it runs (activities/backfill): one whose worker died is
 * retried within 20 s, not after 5 minutes, while reads of the emptied store wait stale.
 */
export const backfillActivity: ActivityOptions = {
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '20 seconds',
  retry: backoff({ initialInterval: '1 second', maximumInterval: '30 seconds' }),
};

/** A replay step (bounds, chunk): bounded by the chunk size, heartbeating while it applies. */
export const replayActivity: ActivityOptions = {
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '1 minute',
  retry: backoff({ initialInterval: '1 second', maximumInterval: '30 seconds' }),
};

/**
 * A compaction step: long (bounded per call), heartbeating per deleted chunk, or on a timer while a
 * VACUUM runs (each VACUUM statement has 20 minutes: activities/compaction/vacuum-tables.ts).
 */
export const compactionActivity: ActivityOptions = {
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '1 minute',
  // bounded: a step that keeps failing fails its run (visible) and the next hourly run tries again
  retry: backoff({ initialInterval: '1 second', maximumInterval: '1 minute', maximumAttempts: 10 }),
};

/**
 * The export of one day: a big day (millions of changes) takes longer than landing's 30 minutes;
 * it heartbeats inside its long loops, so a dead worker is still found within 5 minutes.
 */
export const exportDayActivity: ActivityOptions = {
  startToCloseTimeout: '4 hours',
  heartbeatTimeout: '5 minutes',
  retry: backoff({ initialInterval: '2 seconds', maximumInterval: '1 minute', maximumAttempts: 10 }),
};

/** Landing and the nightly export: long DuckDB work; a bounded number of attempts, then the run fails visibly. */
export const landingAndExportActivity: ActivityOptions = {
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '5 minutes',
  retry: backoff({ initialInterval: '2 seconds', maximumInterval: '1 minute', maximumAttempts: 10 }),
};

/**
 * The landing run's prune of its EXPORT_DIR (folders removed, markers read): short. Few attempts:
 * the next minute's run tries again, and one that keeps failing fails its runs visibly without
 * holding the landing back for long (the schedule skips a fire while a run is still going).
 */
export const landingPruneActivity: ActivityOptions = {
  startToCloseTimeout: '5 minutes',
  retry: backoff({ initialInterval: '2 seconds', maximumInterval: '10 seconds', maximumAttempts: 3 }),
};

/** What an operator starts (full verify, dead-letter retry): up to an hour, a few attempts. */
export const operatorActivity: ActivityOptions = {
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '2 minutes',
  retry: backoff({ initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 5 }),
};

/** The scheduled sample verify: few attempts, since the next fire checks a fresh sample anyway. */
export const sampledVerifyActivity: ActivityOptions = {
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '2 minutes',
  retry: backoff({ initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 3 }),
};

const reshardRetry = backoff({ initialInterval: '500 milliseconds', maximumInterval: '10 seconds' });

/** A re-split step (freeze, split, lift, schedules): short; a refusal is final, the rest is retried. */
export const reshardActivity: ActivityOptions = { startToCloseTimeout: '2 minutes', retry: reshardRetry };

/**
 * The re-split's catch-up: as long as the shards take to reach the freeze (bounded by the run's
 * own timeout), heartbeating every round, so a dead worker is noticed and a cancellation arrives.
 */
export const reshardCatchUpActivity: ActivityOptions = {
  startToCloseTimeout: '1 hour',
  // (heartbeats go out at most every 80 % of this: a cancelled or terminated run's catch-up
  // learns it, and stops renewing the freeze, within about 4 s)
  heartbeatTimeout: '5 seconds',
  retry: reshardRetry,
};

/**
 * A capture run's activity: streams for its budget (about 10 s), heartbeating at least every
 * second (at most every 250 ms). The SDK sends heartbeats at most every 80 % of the timeout, and a cancellation (`ops
 * pause`) reaches the activity with the next one: 3 s keeps that, and noticing a dead worker,
 * within a few seconds. The run waits for a cancelled activity to finish, so a stopped run has
 * stopped writing.
 */
export const captureActivity: ActivityOptions = {
  // Long: a session that must create its slot waits, before it streams, for every transaction
  // running on the source to end, then for those running when they did (capture/slot.ts). Timed
  // out, the creation was cancelled and the next attempt started that wait over: with overlapping
  // write transactions of several minutes (batch jobs) no attempt ever finished. The heartbeat
  // timeout notices a dead worker; the budget ends a streaming run.
  startToCloseTimeout: '24 hours',
  heartbeatTimeout: '3 seconds',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: drainRetry,
};
