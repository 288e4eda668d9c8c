/**
 * Replay from a position (`replay-<position>-<time>`): re-applies every retained change from
 * `from` up to where the drain was when the replay started, in chunks, with progress in the
 * `progress` query (the CLI draws it as a bar with rate and ETA) and in each chunk's result.
 */
import {
  continueAsNew,
  defineQuery,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { Position } from '../outbox';
import { WORKFLOW_INPUT_DEFAULTS } from '../config/defaults';
import { replayActivity } from './activity-options';
import { count, progress as progressText } from './run-details';

const acts = proxyActivities<Activities>(replayActivity);

export interface ReplayProgress {
  from: Position;
  to: Position | null;
  /** The drain's applied snapshot when the replay started: only changes visible in it are replayed. */
  toSnapshot?: string;
  position: Position;
  rows: number;
  totalRows: number;
  applied: number;
  done: boolean;
}

export interface ReplayInput {
  from: Position;
  chunkRows?: number;
  state?: ReplayProgress;
}

export const replayProgressQuery = defineQuery<ReplayProgress>('progress');

export async function replayWorkflow(input: ReplayInput): Promise<ReplayProgress> {
  const progress: ReplayProgress = input.state ?? {
    from: input.from,
    to: null,
    position: input.from,
    rows: 0,
    totalRows: 0,
    applied: 0,
    done: false,
  };
  setHandler(replayProgressQuery, () => progress);
  if (!progress.to) {
    const bounds = await acts.replayBounds({ from: input.from });
    // where compaction had not cut yet (absent from workers before outbox holds)
    if (bounds.from) progress.from = progress.position = bounds.from;
    progress.to = bounds.to;
    progress.toSnapshot = bounds.toSnapshot;
    progress.totalRows = bounds.rows;
  }
  while (!progress.done) {
    const r = await acts.replayChunk({
      from: progress.position,
      to: progress.to,
      toSnapshot: progress.toSnapshot,
      limit: input.chunkRows ?? WORKFLOW_INPUT_DEFAULTS.replayChunkRows,
    });
    progress.rows += r.rows;
    progress.applied += r.applied;
    progress.position = r.position;
    progress.done = r.done;
    setCurrentDetails(replayDetails(progress));
    if (!progress.done && workflowInfo().continueAsNewSuggested)
      await continueAsNew<typeof replayWorkflow>({ ...input, state: progress });
  }
  return progress;
}

/** The Web UI's current details of a replay: rows against the total, changes written again, done. */
function replayDetails(p: ReplayProgress): string {
  const state = p.done ? 'done' : 'replaying';
  return `${state} · ${progressText(p.rows, p.totalRows, 'retained changes')} · ${count(p.applied)} store writes · up to the drain's snapshot ${p.toSnapshot ?? '(none)'}`;
}
