/**
 * A Temporal server of a test file's own for the chain workflows (drain, capture) with their
 * activities mocked: TestWorkflowEnvironment's local dev server run from the installed Temporal
 * CLI (nothing is downloaded), with a low continue-as-new suggestion threshold so that a run is
 * told to continue-as-new after a few activities instead of thousands of events.
 */
import type { Client } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { findTemporalCli } from '../../scripts/lib/temporal-server';

/** Events after which the server suggests continue-as-new (default 4096): a run of ~15 activities. */
export const SUGGEST_CONTINUE_AS_NEW_AFTER_EVENTS = 100;

export async function startChainTestServer(): Promise<TestWorkflowEnvironment> {
  // The scenarios provoke the chains' warnings on purpose (lease lost, store without an epoch).
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: findTemporalCli() },
      log: { format: 'pretty', level: 'error' },
      extraArgs: [
        '--dynamic-config-value',
        `limit.historyCount.suggestContinueAsNew=${SUGGEST_CONTINUE_AS_NEW_AFTER_EVENTS}`,
      ],
    },
  });
}

/**
 * Events one activity of a chain adds to its history: scheduled, started, completed, and the
 * workflow task that takes the result (scheduled, started, completed). A signal sent while the
 * activity runs adds 5 more before that task starts (the signal, its own task, the cancel request).
 */
const ACTIVITY_CYCLE_EVENTS = 6;

/**
 * Called from inside a chain's activity: whether the workflow task that takes this activity's
 * result will be the first told to continue-as-new, if a signal is sent now. The history is
 * within one cycle of the threshold: the task that scheduled this activity was still below it (no
 * suggestion yet), and the one after the signal, 9 events on, is past it.
 */
export async function resultWillSuggestContinueAsNew(client: Client, workflowId: string): Promise<boolean> {
  const { historyLength } = await client.workflow.getHandle(workflowId).describe();
  return historyLength + ACTIVITY_CYCLE_EVENTS >= SUGGEST_CONTINUE_AS_NEW_AFTER_EVENTS;
}

/** Whether a workflow task of the run after its first signal was told to continue-as-new (the test's own check). */
export async function suggestedAfterSignal(client: Client, workflowId: string, runId?: string): Promise<boolean> {
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  const events = history.events ?? [];
  const signalled = events.findIndex((e) => e.workflowExecutionSignaledEventAttributes);
  return (
    signalled >= 0 &&
    events.slice(signalled).some((e) => e.workflowTaskStartedEventAttributes?.suggestContinueAsNew === true)
  );
}
