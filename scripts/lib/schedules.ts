/**
 * The pipeline's Temporal Schedules, created or updated idempotently at every start (the
 * Schedules API, not the legacy cron option of a workflow start). Updating keeps the paused/unpaused state
 * an operator chose.
 */
import { Client, ScheduleAlreadyRunning, ScheduleOverlapPolicy, ScheduleOptions } from '@temporalio/client';
import { batchTaskQueue, Config, names } from '../../config';
import type { DrainWorkflowInput, SampledVerifyInput } from '../../workflows';

/**
 * One schedule: fires `workflowType` on `taskQueue` (skipping a fire while the previous run is
 * still going); after downtime, one run starts right away rather than every missed one
 * (`catchupWindow`).
 */
function scheduleOptions(o: {
  scheduleId: string;
  spec: ScheduleOptions['spec'];
  workflowType: string;
  /** The schedule appends the fire time: drain-2026-…Z */
  workflowId: string;
  taskQueue: string;
  args: unknown[];
  catchupWindow?: string;
  note: string;
}): ScheduleOptions {
  return {
    scheduleId: o.scheduleId,
    spec: o.spec,
    action: {
      type: 'startWorkflow',
      workflowType: o.workflowType,
      workflowId: o.workflowId,
      taskQueue: o.taskQueue,
      args: o.args,
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: o.catchupWindow ?? '1 minute' },
    state: { note: o.note },
  };
}

export function drainScheduleOptions(config: Config): ScheduleOptions {
  const input: DrainWorkflowInput = {
    intervalMs: config.DRAIN_INTERVAL_MS,
    batchSize: config.DRAIN_BATCH_SIZE,
    maxBatchSize: config.DRAIN_MAX_BATCH_SIZE,
    idleWaitMs: config.DRAIN_IDLE_WAIT_MS,
    // The backfill the drain starts by itself when the store lost its data.
    backfillChunkRows: config.BACKFILL_CHUNK_ROWS,
    backfillRowsPerSecond: config.BACKFILL_ROWS_PER_S,
  };
  return scheduleOptions({
    scheduleId: names.drainScheduleId,
    spec: { intervals: [{ every: config.DRAIN_INTERVAL_MS }] },
    workflowType: 'drainWorkflow',
    workflowId: names.drainWorkflowIdPrefix,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    args: [input],
    note: 'drains the CDC outbox into the Redis online store',
  });
}

export function compactionScheduleOptions(config: Config): ScheduleOptions {
  return scheduleOptions({
    scheduleId: names.compactionScheduleId,
    spec: { intervals: [{ every: config.COMPACTION_INTERVAL_MS }] },
    workflowType: 'compactionWorkflow',
    workflowId: names.compactionWorkflowIdPrefix,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    args: [{}],
    note: 'prunes the outbox, retried dead letters and stale field tombstones',
  });
}

export function landingScheduleOptions(config: Config): ScheduleOptions {
  return scheduleOptions({
    scheduleId: names.landingScheduleId,
    spec: { intervals: [{ every: config.LANDING_INTERVAL_MS }] },
    workflowType: 'landingWorkflow',
    workflowId: 'landing',
    taskQueue: batchTaskQueue(config),
    args: [{}],
    note: 'lands applied changes as Parquet for the nightly export',
  });
}

export function exportScheduleOptions(config: Config): ScheduleOptions {
  return scheduleOptions({
    scheduleId: names.exportScheduleId,
    spec: { calendars: [{ hour: config.EXPORT_HOUR_UTC, minute: 0 }] },
    workflowType: 'exportWorkflow',
    workflowId: 'export-nightly',
    taskQueue: batchTaskQueue(config),
    args: [{}],
    catchupWindow: '6 hours',
    note: 'exports the previous UTC day as Parquet (training data)',
  });
}

export function verifyScheduleOptions(config: Config): ScheduleOptions {
  const input: SampledVerifyInput = { sample: config.VERIFY_SAMPLE_SKUS };
  return scheduleOptions({
    scheduleId: names.verifyScheduleId,
    spec: { intervals: [{ every: config.VERIFY_INTERVAL_MS }] },
    workflowType: 'sampledVerifyWorkflow',
    workflowId: names.verifyWorkflowIdPrefix,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    args: [input],
    note: 'verifies a sample of the store against the source and repairs differences through the outbox',
  });
}

export const ALL_SCHEDULE_IDS = [
  names.drainScheduleId,
  names.compactionScheduleId,
  names.landingScheduleId,
  names.exportScheduleId,
  names.verifyScheduleId,
];

/** Creates or updates every schedule; returns what happened to the drain's. */
export async function ensureSchedules(client: Client, config: Config): Promise<'created' | 'updated'> {
  const drain = await ensureSchedule(client, drainScheduleOptions(config));
  await ensureSchedule(client, compactionScheduleOptions(config));
  await ensureSchedule(client, landingScheduleOptions(config));
  await ensureSchedule(client, exportScheduleOptions(config));
  await ensureSchedule(client, verifyScheduleOptions(config));
  return drain;
}

async function ensureSchedule(client: Client, opts: ScheduleOptions): Promise<'created' | 'updated'> {
  try {
    await client.schedule.create(opts);
    return 'created';
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await client.schedule.getHandle(opts.scheduleId).update((prev) => ({
      ...prev,
      spec: opts.spec,
      action: opts.action as typeof prev.action,
      policies: { ...prev.policies, ...opts.policies },
    }));
    return 'updated';
  }
}
