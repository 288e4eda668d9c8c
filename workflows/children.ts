/**
 * Children a workflow starts to outlive it (abandoned): the automatic backfill (by the drain when
 * the store lost its data, a captured TRUNCATE or a source's lost slot included; by a capture
 * when its slot was lost, in runs from before the drain did that) and a SKU's rebuild.
 */
import {
  ParentClosePolicy,
  startChild,
  WorkflowIdReusePolicy,
  type ChildWorkflowOptions,
  type Workflow,
  type WithWorkflowArgs,
} from '@temporalio/workflow';
// @temporalio/workflow 1.24 does not re-export this failure; the workflow runtime throws this class.
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { CONFIG_DEFAULTS } from '../config/defaults';
import { backfillWorkflow } from './backfill';
import { childTags } from './search-attributes';

/** Id of the backfill the pipeline starts by itself. */
export const AUTO_BACKFILL_ID = 'backfill-auto';

/** The automatic backfill; one at a time: if it is already running, that is the one. */
export async function startBackfillUnlessRunning(
  reason: string,
  opts: { chunkRows?: number; rowsPerSecond?: number },
): Promise<void> {
  await startUnlessRunning(backfillWorkflow, {
    workflowId: AUTO_BACKFILL_ID,
    args: [
      {
        reason,
        chunkRows: opts.chunkRows ?? CONFIG_DEFAULTS.BACKFILL_CHUNK_ROWS,
        rowsPerSecond: opts.rowsPerSecond ?? CONFIG_DEFAULTS.BACKFILL_ROWS_PER_S,
      },
    ],
  });
}

/** startChild's options when given the workflow function (the types come from the function). */
type ChildOptions = Omit<ChildWorkflowOptions, 'typeInfo'> & { typeInfo?: never };

/**
 * Starts a child that outlives this run (abandoned). A run of it already going under the same id
 * is not an error: that run does the work; a finished one may be started again. Returns whether
 * this call started one.
 */
export async function startUnlessRunning<W extends Workflow>(
  workflow: W,
  options: WithWorkflowArgs<W, ChildOptions>,
): Promise<boolean> {
  try {
    await startChild(workflow, {
      ...childTags(workflow.name),
      ...options,
      parentClosePolicy: ParentClosePolicy.ABANDON,
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
    });
    return true;
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    return false;
  }
}
