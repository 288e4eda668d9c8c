/**
 * Compaction, fired by the schedule `fresh-badges-compaction` (hourly by default): prunes outbox
 * rows every consumer has committed that are older than the retention, retried dead letters past
 * theirs, and field tombstones that can no longer fence anything, then vacuums. The outbox is
 * pruned in bounded calls, as many as it takes up to the run's bound; the tombstone sweep is
 * bounded per run and what is left is taken by the next run. Progress shows in the activities'
 * heartbeat details.
 */
import { log, patched, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { WORKFLOW_INPUT_DEFAULTS } from '../config/defaults';
import type { Position } from '../outbox';
import type { PruneResult } from '../activities/compaction/prune-outbox';
import { compactionActivity } from './activity-options';

const { compactOutbox, pruneOutboxRows, finishCompaction, sweepTombstones } =
  proxyActivities<Activities>(compactionActivity);

export interface CompactionInput {
  /** Override the configured retention (tests, operators). */
  retentionMs?: number;
  /** Outbox rows per prune call (COMPACTION_MAX_ROWS when absent). */
  maxRows?: number;
  /** Prune calls per run (WORKFLOW_INPUT_DEFAULTS.compactionMaxCalls when absent). */
  maxCalls?: number;
  maxKeys?: number;
}

export async function compactionWorkflow(input: CompactionInput = {}) {
  const pruning = () => compactOutbox({ retentionMs: input.retentionMs, maxRows: input.maxRows });
  const sweeping = () => sweepTombstones({ maxKeys: input.maxKeys });
  // One bounded prune per run kept up with about 555 changes/s at the defaults (2,000,000 rows an
  // hour): above that the outbox grew until the disk was full.
  if (patched('compaction-prunes-while-more')) return sideBySide(pruneWhileMore(input), sweeping());
  if (patched('compaction-steps-apart')) return sideBySide(pruning(), sweeping());
  const outbox = await pruning();
  const tombstones = await sweeping();
  return { outbox, tombstones };
}

/**
 * Side by side, each retried on its own (a bounded number of times): an outbox prune that keeps
 * failing (a delete the database keeps refusing, say) must not stop the sweep, which keeps the
 * deletion fence recent (store/fence.ts), holds waiting dead letters and re-applies lost
 * retries. Both end before the run does; then it fails, visibly, if either failed, and the
 * next scheduled run starts (one left running would make the schedule skip every later one).
 */
async function sideBySide<O, T>(pruning: Promise<O>, sweeping: Promise<T>): Promise<{ outbox: O; tombstones: T }> {
  const [outbox, tombstones] = await Promise.allSettled([pruning, sweeping]);
  if (outbox.status === 'rejected') throw outbox.reason;
  if (tombstones.status === 'rejected') throw tombstones.reason;
  return { outbox: outbox.value, tombstones: tombstones.value };
}

/**
 * Outbox prune calls while rows are left (each bounded, heartbeating), at most `maxCalls`; then the
 * rest of compaction once. `more` in the result: the run stopped at its bound with eligible rows
 * left, so the outbox grows faster than a run prunes (also a warning in the worker's log).
 */
async function pruneWhileMore(input: CompactionInput) {
  const maxCalls = input.maxCalls ?? WORKFLOW_INPUT_DEFAULTS.compactionMaxCalls;
  let deleted = 0;
  let calls = 0;
  let floor: string | null = null;
  let after: Position | null = null;
  let more = true;
  while (more && calls < maxCalls) {
    const r: PruneResult = await pruneOutboxRows({ retentionMs: input.retentionMs, maxRows: input.maxRows, after });
    calls++;
    deleted += r.deleted;
    ({ floor, after, more } = r);
  }
  if (more)
    log.warn(
      `compaction stopped at its bound of ${maxCalls} prune calls (${deleted} rows) with eligible outbox rows left: the outbox grows faster than a run prunes; raise COMPACTION_MAX_ROWS or run compaction more often (COMPACTION_INTERVAL_MS)`,
      { deleted, calls },
    );
  const finished = await finishCompaction({ retentionMs: input.retentionMs, outboxPruned: deleted > 0 });
  return { deleted, floor, more, calls, ...finished };
}
