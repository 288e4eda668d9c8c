/**
 * Compaction, fired by the schedule `fresh-badges-compaction` (hourly by default): prunes outbox
 * rows every consumer has committed that are older than the retention, retried dead letters past
 * theirs, and field tombstones that can no longer fence anything. Each step is bounded per run;
 * what is left is taken by the next run. Progress shows in the activities' heartbeat details.
 */
import { proxyActivities } from '@temporalio/workflow';
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
  const outbox = await compactOutbox({ retentionMs: input.retentionMs, maxRows: input.maxRows });
  const tombstones = await sweepTombstones({ maxKeys: input.maxKeys });
  return { outbox, tombstones };
}
