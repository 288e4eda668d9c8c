/**
 * Compaction, fired by the schedule `fresh-badges-compaction` (hourly by default): prunes outbox
 * rows every consumer has committed that are older than the retention, retried dead letters past
 * theirs, and field tombstones that can no longer fence anything. Each step is bounded per run;
 * what is left is taken by the next run. Progress shows in the activities' heartbeat details.
 */
import { patched, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { compactionActivity } from './activity-options';

const { compactOutbox, sweepTombstones } = proxyActivities<Activities>(compactionActivity);

export interface CompactionInput {
  /** Override the configured retention (tests, operators). */
  retentionMs?: number;
  maxRows?: number;
  maxKeys?: number;
}

export async function compactionWorkflow(input: CompactionInput = {}) {
  const pruning = () => compactOutbox({ retentionMs: input.retentionMs, maxRows: input.maxRows });
  const sweeping = () => sweepTombstones({ maxKeys: input.maxKeys });
  if (patched('compaction-steps-apart')) {
    // Side by side, each retried on its own (a bounded number of times): an outbox prune that keeps
    // failing (a landing folder it may not remove, say) must not stop the sweep, which keeps the
    // deletion fence recent (store/fence.ts), holds waiting dead letters and re-applies lost
    // retries. Both end before the run does; then it fails, visibly, if either failed, and the
    // next scheduled run starts (one left running would make the schedule skip every later one).
    const [outbox, tombstones] = await Promise.allSettled([pruning(), sweeping()]);
    if (outbox.status === 'rejected') throw outbox.reason;
    if (tombstones.status === 'rejected') throw tombstones.reason;
    return { outbox: outbox.value, tombstones: tombstones.value };
  }
  const outbox = await pruning();
  const tombstones = await sweeping();
  return { outbox, tombstones };
}
