/**
 * The pipeline's Temporal Schedules, created or updated idempotently at every start (the
 * Schedules API, not the legacy cron option of a workflow start). Updating keeps the paused/unpaused state
 * an operator chose.
 */
import { Client, ScheduleAlreadyRunning, ScheduleOverlapPolicy, ScheduleOptions } from '@temporalio/client';
import { batchTaskQueue, Config, names } from '../../config';
import type { DrainWorkflowInput, SampledVerifyInput } from '../../workflows';

export function drainScheduleOptions(config: Config): ScheduleOptions {
  const args: [DrainWorkflowInput] = [
    {
      intervalMs: config.DRAIN_INTERVAL_MS,
      batchSize: config.DRAIN_BATCH_SIZE,
      maxBatchSize: config.DRAIN_MAX_BATCH_SIZE,
      idleWaitMs: config.DRAIN_IDLE_WAIT_MS,
      // The backfill the drain starts by itself when the store lost its data.
      backfillChunkRows: config.BACKFILL_CHUNK_ROWS,
      backfillRowsPerSecond: config.BACKFILL_ROWS_PER_S,
    },
  ];
  return {
    scheduleId: names.drainScheduleId,
    spec: { intervals: [{ every: config.DRAIN_INTERVAL_MS }] },
    action: {
      type: 'startWorkflow',
      workflowType: 'drainWorkflow',
      workflowId: names.drainWorkflowIdPrefix, // the schedule appends the fire time: drain-2026-…Z
      taskQueue: config.TEMPORAL_TASK_QUEUE,
      args,
    },
    policies: {
      overlap: ScheduleOverlapPolicy.SKIP,
      // After downtime, start one run right away rather than replaying every missed minute.
      catchupWindow: '1 minute',
    },
    state: { note: 'drains the CDC outbox into the Redis online store' },
  };
}

export function compactionScheduleOptions(config: Config): ScheduleOptions {
  return {
    scheduleId: names.compactionScheduleId,
    spec: { intervals: [{ every: config.COMPACTION_INTERVAL_MS }] },
    action: {
      type: 'startWorkflow',
      workflowType: 'compactionWorkflow',
      workflowId: names.compactionWorkflowIdPrefix,
      taskQueue: config.TEMPORAL_TASK_QUEUE,
      args: [{}],
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' },
    state: { note: 'prunes the outbox, retried dead letters and stale field tombstones' },
  };
}

export function landingScheduleOptions(config: Config): ScheduleOptions {
  return {
    scheduleId: names.landingScheduleId,
    spec: { intervals: [{ every: config.LANDING_INTERVAL_MS }] },
    action: {
      type: 'startWorkflow',
      workflowType: 'landingWorkflow',
      workflowId: 'landing',
      taskQueue: batchTaskQueue(config),
      args: [{}],
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' },
    state: { note: 'lands applied changes as Parquet for the nightly export' },
  };
}

export function exportScheduleOptions(config: Config): ScheduleOptions {
  return {
    scheduleId: names.exportScheduleId,
    spec: { calendars: [{ hour: config.EXPORT_HOUR_UTC, minute: 0 }] },
    action: {
      type: 'startWorkflow',
      workflowType: 'exportWorkflow',
      workflowId: 'export-nightly',
      taskQueue: batchTaskQueue(config),
      args: [{}],
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '6 hours' },
    state: { note: 'exports the previous UTC day as Parquet (training data)' },
  };
}

export function verifyScheduleOptions(config: Config): ScheduleOptions {
  const args: [SampledVerifyInput] = [{ sample: config.VERIFY_SAMPLE_SKUS }];
  return {
    scheduleId: names.verifyScheduleId,
    spec: { intervals: [{ every: config.VERIFY_INTERVAL_MS }] },
    action: {
      type: 'startWorkflow',
      workflowType: 'sampledVerifyWorkflow',
      workflowId: names.verifyWorkflowIdPrefix,
      taskQueue: config.TEMPORAL_TASK_QUEUE,
      args,
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' },
    state: { note: 'verifies a sample of the store against the source and repairs differences through the outbox' },
  };
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
