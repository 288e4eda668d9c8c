/**
 * Changing the number of drain shards (DRAIN_SHARDS) on a live install, as one durable run with a
 * fixed id (`drain-reshard`): at most one runs at a time, a second request for the same count
 * attaches to it, one for another count is refused by the caller at once (scripts/ops). The steps
 * (activities/drain/reshard.ts): freeze every shard at one snapshot, wait for all of them to reach
 * it, re-split there, then put the new layout's drain schedules in place, keeping an operator's
 * pause. The freeze belongs to this run: a failure or a cancellation lifts it; a run that is
 * terminated leaves it to its lease, after which the drains lift it themselves. Once the split has
 * begun, a cancellation is not taken: the split and the schedules run to their end.
 * Progress: the `progress` query and the Web UI's current details.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  defineQuery,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import { reshardActivity, reshardCatchUpActivity } from './activity-options';

const acts = proxyActivities<Activities>(reshardActivity);
const { reshardCatchUp } = proxyActivities<Activities>(reshardCatchUpActivity);

/** The re-split's workflow id: one at a time. */
export const RESHARD_WORKFLOW_ID = 'drain-reshard';

export interface ReshardInput {
  shards: number;
  /** Give up (and lift the freeze) if the shards have not met by then. */
  timeoutMs?: number;
}

export interface ReshardProgress {
  phase: 'freezing' | 'catching up' | 'splitting' | 'schedules' | 'done' | 'unchanged' | 'failed';
  to: number;
  from: number | null;
  frozenAt: string | null;
  firstBatch: string | null;
  /** Schedules of the new layout were created paused (an operator's pause kept). */
  paused: boolean;
  /** The drain schedules triggered at the end (none while paused). */
  triggered: string[];
  error?: string;
}

export const reshardProgressQuery = defineQuery<ReshardProgress>('progress');

export async function reshardWorkflow(input: ReshardInput): Promise<ReshardProgress> {
  const owner = `${workflowInfo().workflowId}/${workflowInfo().runId}`;
  const progress: ReshardProgress = {
    phase: 'freezing',
    to: input.shards,
    from: null,
    frozenAt: null,
    firstBatch: null,
    paused: false,
    triggered: [],
  };
  const show = (what: string) => setCurrentDetails(`re-split of the drain to ${input.shards} shard(s): ${what}`);
  setHandler(reshardProgressQuery, () => progress);
  show('freezing every shard at one snapshot');
  const frozen = await acts.reshardFreeze({ shards: input.shards, owner });
  if (frozen.kind === 'frozen') {
    progress.from = frozen.from;
    progress.frozenAt = frozen.snap;
    try {
      progress.phase = 'catching up';
      show(`${frozen.from} shard(s) frozen at ${frozen.snap}; waiting for each to reach it`);
      await reshardCatchUp({ owner, snap: frozen.snap, timeoutMs: input.timeoutMs ?? 600_000 });
      progress.phase = 'splitting';
      show(`every shard at ${frozen.snap}; re-splitting`);
      if (patched('reshard-split-runs-to-the-end'))
        // Once the split has begun only finishing it is safe (activities/drain/reshard.ts). Cancelled
        // here (an operator in the Web UI), the run closed while its split went on: the new layout in
        // force with no schedules of its own (nothing drained), or a split stopped half-way that
        // nothing retried (frozen for good). So the split and the schedules run to their end.
        return await CancellationScope.nonCancellable(async () => {
          progress.firstBatch = await acts.reshardSplit({ owner, snap: frozen.snap, shards: input.shards });
          return putSchedules(input, progress, true, show);
        });
      progress.firstBatch = await acts.reshardSplit({ owner, snap: frozen.snap, shards: input.shards });
    } catch (err) {
      progress.phase = 'failed';
      progress.error = messageOf(err);
      // Whatever stopped us (a refusal, a timeout, a cancellation), freshness must not stay
      // stopped: the freeze goes, unless the split had begun (then only finishing it is safe).
      await CancellationScope.nonCancellable(() => acts.reshardLiftFreeze({ owner }));
      show(`FAILED, freeze lifted unless the split had begun: ${progress.error}`);
      throw err;
    }
  } else progress.from = frozen.shards;
  return putSchedules(input, progress, frozen.kind === 'frozen', show);
}

/** The last step: the drain schedules of the layout now in force. */
async function putSchedules(
  input: ReshardInput,
  progress: ReshardProgress,
  split: boolean,
  show: (what: string) => void,
): Promise<ReshardProgress> {
  progress.phase = 'schedules';
  show('putting the drain schedules of the new layout in place');
  const schedules = await acts.reshardSchedules({ shards: input.shards });
  progress.paused = schedules.paused;
  progress.triggered = schedules.triggered;
  progress.phase = split ? 'done' : 'unchanged';
  show(
    `${split ? `done: ${progress.from} -> ${input.shards} shard(s), first batch ${progress.firstBatch}` : `already ${input.shards} shard(s)`}${progress.paused ? '; schedules PAUSED by an operator, as before' : ''}`,
  );
  return progress;
}

function messageOf(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}
