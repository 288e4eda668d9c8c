/**
 * What the pipeline's chains cost Temporal during a section of a benchmark (issue 25): the history
 * events written and the activities scheduled between two instants, per minute, for the drain's
 * runs and for capture's, read back from the workflows' histories (every run that was open at some
 * time in the window, continued-as-new runs included).
 */
import type { Client } from '@temporalio/client';

export interface TemporalActions {
  /** History events of drain runs per minute (all shards together). */
  drainEventsPerMin: number;
  /** drainBatch activities scheduled per minute (all shards together). */
  drainActivitiesPerMin: number;
  /** History events of capture runs per minute (all sources together). */
  captureEventsPerMin: number;
  /** captureSource activities scheduled per minute (all sources together). */
  captureActivitiesPerMin: number;
}

const KINDS = {
  drainWorkflow: { activity: 'drainBatch' },
  captureWorkflow: { activity: 'captureSource' },
} as const;

/** Counts events and scheduled activities of the drain and capture runs with an event time in [from, to]. */
export async function temporalActionsBetween(client: Client, from: Date, to: Date): Promise<TemporalActions> {
  const counts = { drainWorkflow: { events: 0, activities: 0 }, captureWorkflow: { events: 0, activities: 0 } };
  const query = `WorkflowType IN ('drainWorkflow', 'captureWorkflow') AND (ExecutionStatus = 'Running' OR CloseTime >= '${from.toISOString()}')`;
  for await (const wf of client.workflow.list({ query })) {
    if (wf.startTime > to) continue;
    const kind = wf.type as keyof typeof KINDS;
    if (!(kind in KINDS)) continue;
    const history = await client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
    for (const e of history.events ?? []) {
      const at = e.eventTime?.seconds ? Number(e.eventTime.seconds) * 1000 + (e.eventTime.nanos ?? 0) / 1e6 : 0;
      if (at < from.getTime() || at > to.getTime()) continue;
      counts[kind].events++;
      if (e.activityTaskScheduledEventAttributes?.activityType?.name === KINDS[kind].activity)
        counts[kind].activities++;
    }
  }
  const minutes = (to.getTime() - from.getTime()) / 60_000;
  return {
    drainEventsPerMin: counts.drainWorkflow.events / minutes,
    drainActivitiesPerMin: counts.drainWorkflow.activities / minutes,
    captureEventsPerMin: counts.captureWorkflow.events / minutes,
    captureActivitiesPerMin: counts.captureWorkflow.activities / minutes,
  };
}
