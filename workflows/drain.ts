/**
 * The drain: fired by a Temporal Schedule every DRAIN_INTERVAL_MS (overlap policy skip), it runs
 * micro-batches back to back until just before the next scheduled fire, so the outbox is drained
 * continuously and a change is in Redis within about a second.
 *
 * Timing: the schedule fires on interval boundaries (every minute on the minute). A run drains
 * until just before the next boundary (at least half an interval away), then continues-as-new
 * into the next minute's run instead of exiting. Exiting and letting the next fire start a fresh
 * run leaves a gap, and under load the run can still be closing when the fire comes, so the
 * schedule (overlap skip) skips it and nothing drains for a whole minute; the benchmark hit
 * exactly that. So the chain keeps itself alive, histories stay one minute long, and new workflow
 * code is picked up every minute; the schedule's fires are a watchdog that starts a drain only
 * when none is running (after `ops pause`/`resume`, a termination, a first start). A fire that
 * does start a second run while the chain lives is harmless: the lease sends it away.
 * `ops pause` signals `stop`: the running activity is cancelled and commits what it applied; the run
 * releases the lease and ends.
 *
 * Only one run drains at a time: the first activity takes a lease named after this workflow id;
 * a second run (a manual trigger defaults to overlap allow-all) finds it held and exits cleanly.
 *
 * With DRAIN_SHARDS > 1 each shard is a chain of its own (schedule and workflow id per shard,
 * `drain-1of4`), with its own lease and cursor (outbox/shards.ts); the input names the shard.
 * When the number of shards changes, a run of a shard that no longer exists is told `retired` by
 * its next batch and ends.
 */
import {
  CancellationScope,
  continueAsNew,
  defineQuery,
  defineSignal,
  log,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { DrainBatchResult, ShardRef } from '../activities/drain';
import { CONFIG_DEFAULTS, WORKFLOW_INPUT_DEFAULTS } from '../config/defaults';
import { drainBatchActivity, drainLeaseActivity } from './activity-options';
import { skuRebuildWorkflow, skuRebuildWorkflowId } from './sku-rebuild';
import { startBackfillUnlessRunning, startUnlessRunning } from './children';
import { count, duration } from './run-details';
import { continuedRunKeepsLease } from './chain-lease';
import { continueAsNewNow, stoppedBy } from './chain-stop';
import { ended } from './search-attributes';

export interface DrainWorkflowInput {
  intervalMs: number;
  /** The shard this chain drains (absent: the single drain of DRAIN_SHARDS=1). */
  shard?: ShardRef;
  /** How long one run of the chain lasts before it continues as new (CHAIN_RUN_MS; default intervalMs). */
  runMs?: number;
  /** Stop starting batches this long before the run's end. */
  marginMs?: number;
  batchSize?: number;
  /** While batches come back full (a backlog), the batch size doubles up to this. */
  maxBatchSize?: number;
  idleWaitMs?: number;
  /** Each drain activity keeps applying batches for this long (DRAIN_ACTIVITY_BUDGET_MS). */
  activityBudgetMs?: number;
  /** The automatic backfill's chunk size and rate limit (BACKFILL_CHUNK_ROWS, BACKFILL_ROWS_PER_S). */
  backfillChunkRows?: number;
  backfillRowsPerSecond?: number;
  /** An incomplete store asks for the automatic backfill again after this long, then twice as long each time (default 60 s; tests shorten it). */
  backfillAskAgainMs?: number;
  /** SKU rebuilds one run starts at most (default MAX_REBUILDS_PER_RUN; tests lower it). */
  maxRebuildsPerRun?: number;
  /** Carried across continue-as-new so the run summary covers the whole run. */
  carried?: DrainRunSummary;
}

export interface DrainRunSummary {
  outcome: 'drained' | 'lease-held' | 'lease-lost' | 'stopped' | 'retired';
  batches: number;
  rows: number;
  applied: number;
  deadLetters: number;
  holder?: string;
}

/** Finish the current batch, release the lease and end (the CLI's `pause`). */
export const stopDrainSignal = defineSignal('stop');
/** What the run has done so far, and whether it is catching up. */
export const drainStatusQuery = defineQuery<DrainRunSummary & { batchSize: number; caughtUp: boolean }>('status');

export { AUTO_BACKFILL_ID } from './children';

const { acquireDrainLease, releaseDrainLease } = proxyActivities<Activities>(drainLeaseActivity);
const { drainBatch } = proxyActivities<Activities>(drainBatchActivity);

export async function drainWorkflow(input: DrainWorkflowInput): Promise<DrainRunSummary> {
  const owner = workflowInfo().workflowId;
  const { nextFire, stopAt } = runEnd(input);
  const summary: DrainRunSummary = input.carried ?? emptySummary();

  const base = input.batchSize ?? CONFIG_DEFAULTS.DRAIN_BATCH_SIZE;
  const max = Math.max(base, input.maxBatchSize ?? CONFIG_DEFAULTS.DRAIN_MAX_BATCH_SIZE);
  let batchSize = base;
  let caughtUp = false;
  let stop = false;
  const backfill = { requested: false, atMs: 0, againMs: 0 };
  const rebuilds = { left: input.maxRebuildsPerRun ?? MAX_REBUILDS_PER_RUN };
  // `ops pause`: the running activity is cancelled (it learns it at its next heartbeat, within
  // about a second), commits what it applied and returns; the loop below then ends.
  // (Runs started by older code, replayed, keep their history: there the stop only ends the loop.)
  const cancelOnStop = patched('drain-stop-cancels-activity');
  const scope = new CancellationScope();
  setHandler(stopDrainSignal, () => {
    stop = true;
    if (cancelOnStop) scope.cancel();
  });
  setHandler(drainStatusQuery, () => ({ ...summary, batchSize, caughtUp }));

  const shard = input.shard;
  if (!continuedRunKeepsLease('continued-drain-run-keeps-lease')) {
    const lease = await acquireDrainLease({ owner, shard });
    if (!lease.acquired) {
      log.info('another drain run holds the lease; exiting', { holder: lease.holder });
      return ended({ ...summary, outcome: 'lease-held', holder: lease.holder });
    }
  }

  while (Date.now() < stopAt && !stop) {
    let r: DrainBatchResult;
    try {
      const timing = activityTiming(input, stopAt);
      r = await scope.run(() => drainBatch({ owner, maxRows: batchSize, maxBatchRows: max, ...timing, shard }));
    } catch (err) {
      if (stoppedBy(err, stop, 'drain-stop-ends-on-activity-failure')) break;
      throw err;
    }
    if (r.outcome === 'lease-lost') {
      log.warn('drain lease taken over; exiting', { holder: r.holder });
      return ended({ ...summary, outcome: 'lease-lost', holder: r.holder });
    }
    if (r.outcome === 'retired') {
      log.info('the number of drain shards changed and this shard no longer exists; exiting', { shard });
      await releaseDrainLease({ owner, shard });
      return ended({ ...summary, outcome: 'retired' });
    }
    addToSummary(summary, r);
    await startWhatItAsks(r, input, backfill, rebuilds);
    // Catch-up: a full batch means a backlog; bigger batches cost fewer round trips per change.
    caughtUp = r.caughtUp;
    batchSize = r.batchSize ?? (r.rows >= batchSize ? Math.min(max, batchSize * 2) : base);
    // What the Web UI shows for this run without a query (Temporal user metadata).
    setCurrentDetails(detailsOf(shard, r, summary, batchSize));
    if (continueAsNewNow(stop, 'drain-stop-ends-chain')) {
      await continueAsNew<typeof drainWorkflow>({ ...input, carried: summary });
    }
  }

  if (stop) {
    await releaseDrainLease({ owner, shard });
    setCurrentDetails(
      `${where(shard)}PAUSED (ops pause or a stop signal) · this run: ${count(summary.rows)} rows in ${count(summary.batches)} batches, ${count(summary.deadLetters)} dead letters`,
    );
    return ended({ ...summary, outcome: 'stopped' });
  }

  // Histories recorded before the chain (test/histories) released the lease and ended here.
  if (patched('drain-continues-as-new-each-interval') || Date.now() >= nextFire) {
    await continueAsNew<typeof drainWorkflow>({ ...input, carried: undefined });
  }
  await releaseDrainLease({ owner, shard });
  return ended(summary);
}

/**
 * When this run ends: the first run boundary at least half a run away (a scheduled run, started
 * just after a boundary, runs to the next one; one started mid-run still drains a while), less
 * the margin in which no batch starts. A chain's run lasts `runMs` (CHAIN_RUN_MS), so the run list
 * gains a row per shard every few minutes, not every minute; older inputs last one interval.
 */
function runEnd(input: DrainWorkflowInput): { nextFire: number; stopAt: number } {
  const runMs = input.runMs ?? input.intervalMs;
  const nextFire = Math.ceil((Date.now() + runMs / 2) / runMs) * runMs;
  return { nextFire, stopAt: nextFire - (input.marginMs ?? WORKFLOW_INPUT_DEFAULTS.drainMarginMs) };
}

const where = (shard: ShardRef | undefined) => (shard ? `shard ${shard.index} of ${shard.count} · ` : '');

/** The next activity's budget and idle wait, neither past the end of this run. */
function activityTiming(input: DrainWorkflowInput, stopAt: number): { budgetMs: number; waitMs: number } {
  const left = stopAt - Date.now();
  return {
    budgetMs: Math.max(0, Math.min(input.activityBudgetMs ?? CONFIG_DEFAULTS.DRAIN_ACTIVITY_BUDGET_MS, left)),
    waitMs: Math.max(0, Math.min(input.idleWaitMs ?? CONFIG_DEFAULTS.DRAIN_IDLE_WAIT_MS, left)),
  };
}

function emptySummary(): DrainRunSummary {
  return { outcome: 'drained', batches: 0, rows: 0, applied: 0, deadLetters: 0 };
}

function addToSummary(summary: DrainRunSummary, r: DrainBatchResult): void {
  summary.batches += r.batches ?? 1;
  summary.rows += r.rows;
  summary.applied += r.applied;
  summary.deadLetters += r.deadLetters;
}

/**
 * The run's current details after an activity (the Web UI shows them without a query): state,
 * how far behind, this run's counts, batch size, figures rounded.
 */
function detailsOf(shard: ShardRef | undefined, r: DrainBatchResult, summary: DrainRunSummary, batchSize: number) {
  const lag = r.newestSourceMs
    ? ` · newest change applied ${duration(Date.now() - r.newestSourceMs)} after it was written`
    : '';
  // (0 rows not applied yet, not caught up: the delta in progress completes with the next batch)
  const state = r.frozen
    ? 'FROZEN for a change of DRAIN_SHARDS'
    : r.caughtUp
      ? 'caught up'
      : r.behindRows
        ? `BEHIND by about ${count(r.behindRows)}${r.behindCapped ? '+' : ''} rows, catching up`
        : 'CATCHING UP';
  return `${where(shard)}${state}${lag} · this run: ${count(summary.rows)} rows in ${count(summary.batches)} batches, ${count(summary.deadLetters)} dead letters · batch size ${count(batchSize)} · cursor batch ${r.cursor.batch}`;
}

/**
 * SKU rebuilds one run starts at most. Temporal fails a workflow task that would take a run past
 * 2,000 pending children (its default limit), and fails it again on every retry: a mass
 * reactivation (one UPDATE over thousands of SKUs discontinued long ago) would stall the drain.
 * The requests past it stay in the store ({p}rebuilds: those SKUs read `unknown`) and the next run
 * starts them.
 */
const MAX_REBUILDS_PER_RUN = 1_000;

/**
 * One rebuild workflow per reactivated SKU, abandoned so it outlives this run. One already running
 * for the SKU is fine: it re-reads the SKU's current rows and clears the request once the drain
 * has applied them.
 */
async function startRebuilds(skus: string[]): Promise<number> {
  const started = await Promise.all(
    skus.map((sku) =>
      startUnlessRunning(skuRebuildWorkflow, { workflowId: skuRebuildWorkflowId(sku), args: [{ sku }] }),
    ),
  );
  return started.filter(Boolean).length;
}

/** What a drain result asks the workflow to start: SKU rebuilds, the automatic backfill. */
async function startWhatItAsks(
  r: DrainBatchResult,
  input: DrainWorkflowInput,
  backfill: { requested: boolean; atMs: number; againMs: number },
  rebuilds: { left: number },
): Promise<void> {
  if (r.rebuildSkus?.length) {
    // Only the children this run starts count (a start finding the SKU's rebuild running, as the
    // pending requests of a drain that is behind keep doing, adds no pending child).
    if (!patched('drain-rebuilds-capped-per-run')) {
      await startRebuilds(r.rebuildSkus);
    } else {
      for (let next = 0; next < r.rebuildSkus.length && rebuilds.left > 0;) {
        const skus = r.rebuildSkus.slice(next, next + rebuilds.left);
        next += skus.length;
        rebuilds.left -= await startRebuilds(skus);
      }
    }
  }
  // The store was complete again since the backfill was asked for: a later loss in this run (a
  // TRUNCATE, a source's lost slot) needs a backfill of its own.
  if (r.storeWasComplete && backfill.requested && patched('drain-backfill-each-loss')) backfill.requested = false;
  // Still incomplete a while after asking: the request may have found a backfill already running
  // that began before this shard's loss (another shard's request) and so does not complete this
  // shard's partitions. Ask again: a no-op while one runs, a new one once it has ended; each time
  // twice as long after the last (up to 15 min), so a store no backfill completes does not get a
  // full backfill every minute.
  if (
    r.storeIncomplete &&
    backfill.requested &&
    Date.now() - backfill.atMs >= backfill.againMs &&
    patched('drain-backfill-ask-again')
  ) {
    backfill.atMs = Date.now();
    backfill.againMs = Math.min(backfill.againMs * 2, BACKFILL_ASK_AGAIN_MAX_MS);
    await startAutoBackfill(input, 'online store still without an epoch');
  }
  if (r.storeIncomplete && !backfill.requested) {
    backfill.requested = true;
    backfill.atMs = Date.now();
    backfill.againMs = input.backfillAskAgainMs ?? BACKFILL_ASK_AGAIN_MS;
    await startAutoBackfill(input);
  }
}

/** How long an incomplete store waits before the drain asks for the automatic backfill again (then doubling). */
const BACKFILL_ASK_AGAIN_MS = 60_000;
const BACKFILL_ASK_AGAIN_MAX_MS = 15 * 60_000;

/**
 * The store has no epoch: it lost its data (or was never filled). Reads already say stale; a
 * backfill restores it while this drain keeps applying changes (workflows/children.ts).
 */
async function startAutoBackfill(input: DrainWorkflowInput, again?: string): Promise<void> {
  // (asked again: said once already, at the first ask)
  if (!again) log.warn('online store has no epoch (data lost or never filled): starting a backfill');
  await startBackfillUnlessRunning(again ?? 'online store lost its data', {
    chunkRows: input.backfillChunkRows,
    rowsPerSecond: input.backfillRowsPerSecond,
  });
}
