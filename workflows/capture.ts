/**
 * The capture of one source database (docs/capture.md), shaped like the drain: a Temporal Schedule
 * per source (`fresh-badges-capture-<source>`, every CAPTURE_INTERVAL_MS, overlap skip) is the
 * watchdog; the run streams the source's slot into the outbox in activities of
 * CAPTURE_ACTIVITY_BUDGET_MS each (10 s when the input does not say)
 * until just before the next fire, then continues-as-new into the next interval. Between
 * activities the stream stays open in the worker (capture/session-registry.ts).
 *
 * One run per source at a time: the lease `capture:<source>`; a second run steps aside.
 * `ops pause` signals `stop`: the activity is cancelled, writes what it read, and the run releases
 * the lease and ends. Reads go stale by themselves while capture is stopped (the source's ticks
 * stop arriving); `ops resume` starts it again from the slot's confirmed position.
 */
import {
  CancellationScope,
  continueAsNew,
  defineQuery,
  defineSignal,
  patched,
  log,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { CaptureActivityResult } from '../activities/capture';
import { WORKFLOW_INPUT_DEFAULTS } from '../config/defaults';
import { captureActivity, drainLeaseActivity } from './activity-options';
import { continuedRunKeepsLease } from './chain-lease';
import { continueAsNewNow, stoppedBy } from './chain-stop';
import { startBackfillUnlessRunning } from './children';
import { count, duration } from './run-details';
import { ended } from './search-attributes';

export interface CaptureWorkflowInput {
  /** The source's name: 'inventory', 'orders', or 'shop'. */
  source: string;
  intervalMs: number;
  /** How long one run lasts before it continues as new (CHAIN_RUN_MS; default intervalMs). */
  runMs?: number;
  /** Each activity streams this long (the Web UI's view of a run refreshes at this pace); schedules pass CAPTURE_ACTIVITY_BUDGET_MS. */
  activityBudgetMs?: number;
  marginMs?: number;
  carried?: CaptureRunSummary;
}

export interface CaptureRunSummary {
  outcome: 'captured' | 'lease-held' | 'lease-lost' | 'stopped';
  transactions: number;
  rows: number;
  /** The source position written into the outbox. */
  lsn?: string;
  /** Every source change committed before this is in the outbox (ms since the epoch). */
  coveredAtMs?: number | null;
  holder?: string;
}

export const stopCaptureSignal = defineSignal('stop');
export const captureStatusQuery = defineQuery<CaptureRunSummary>('status');

const { acquireCaptureLease, releaseCaptureLease } = proxyActivities<Activities>(drainLeaseActivity);
const { captureSource } = proxyActivities<Activities>(captureActivity);

export async function captureWorkflow(input: CaptureWorkflowInput): Promise<CaptureRunSummary> {
  const owner = workflowInfo().workflowId;
  const margin = input.marginMs ?? WORKFLOW_INPUT_DEFAULTS.drainMarginMs;
  const runMs = input.runMs ?? input.intervalMs; // CHAIN_RUN_MS: see the drain chain
  const nextFire = Math.ceil((Date.now() + runMs / 2) / runMs) * runMs;
  const stopAt = nextFire - margin;
  const summary: CaptureRunSummary = input.carried ?? { outcome: 'captured', transactions: 0, rows: 0 };
  setHandler(captureStatusQuery, () => summary);
  let stop = false;
  const scope = new CancellationScope();
  setHandler(stopCaptureSignal, () => {
    stop = true;
    scope.cancel();
  });

  if (!continuedRunKeepsLease('continued-capture-run-keeps-lease')) {
    const lease = await acquireCaptureLease({ source: input.source, owner });
    if (!lease.acquired) {
      log.info('another capture run holds the lease; exiting', { holder: lease.holder });
      return ended({ ...summary, outcome: 'lease-held', holder: lease.holder });
    }
  }

  while (!stop && Date.now() < stopAt) {
    const budgetMs = Math.max(1_000, Math.min(input.activityBudgetMs ?? 10_000, stopAt - Date.now()));
    let r: CaptureActivityResult;
    try {
      r = await scope.run(() => captureSource({ source: input.source, owner, budgetMs }));
    } catch (err) {
      if (stoppedBy(err, stop, 'capture-stop-ends-on-activity-failure')) break;
      throw err;
    }
    if (r.outcome === 'lease-lost') {
      log.warn('capture lease taken over; exiting', { holder: r.holder });
      return ended({ ...summary, outcome: 'lease-lost', holder: r.holder });
    }
    if (r.slotLost) {
      log.warn(`the replication slot of ${input.source} was lost: the drain empties the store and refills it`);
      // The capture wrote a TRUNCATE of the source's tables with the loss (markSourceLost): the
      // drain empties the store and starts the backfill. Starting one here too would, once that
      // one is done, start a second. A capture activity of older code (a rolling deploy) wrote no
      // TRUNCATE: then this run starts the backfill, as before.
      if (!patched('lost-slot-refilled-by-drain') || !r.refillQueued)
        await startBackfillUnlessRunning(`the replication slot of ${input.source} was lost`, {});
    }
    summary.transactions += r.transactions;
    summary.rows += r.rows;
    summary.lsn = r.lsn;
    summary.coveredAtMs = r.coveredAtMs;
    setCurrentDetails(details(input.source, summary, r));
    if (continueAsNewNow(stop, 'capture-stop-ends-chain'))
      await continueAsNew<typeof captureWorkflow>({ ...input, carried: summary });
  }

  if (stop) {
    await releaseCaptureLease({ source: input.source, owner });
    return ended({ ...summary, outcome: 'stopped' });
  }
  await continueAsNew<typeof captureWorkflow>({ ...input, carried: undefined });
  return summary; // not reached
}

/** What the Web UI shows for the run: position, rate, how far behind the source it is. */
function details(
  source: string,
  s: CaptureRunSummary,
  r: Extract<CaptureActivityResult, { outcome: 'captured' }>,
): string {
  const rate = r.elapsedMs > 0 ? (r.rows * 1000) / r.elapsedMs : 0;
  const behind = r.coveredAtMs ? duration(Date.now() - r.coveredAtMs) : 'no tick yet';
  return `capture of ${source} · LSN ${r.lsn} · ${count(rate)} changes/s · covered until ${behind} ago · this run: ${count(s.rows)} changes in ${count(s.transactions)} source transactions`;
}
