/**
 * The pipeline's Temporal Schedules, created or updated idempotently at every start (the
 * Schedules API, not the legacy cron option of a workflow start). Updating keeps the paused/unpaused state
 * an operator chose.
 */
import {
  Client,
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  ScheduleOptions,
} from '@temporalio/client';
import { batchTaskQueue, Config, names } from '../../config';
import type { CaptureWorkflowInput, CompactionInput, DrainWorkflowInput, SampledVerifyInput } from '../../workflows';
import { WORKFLOW_INPUT_DEFAULTS } from '../../config/defaults';
import { captureSources } from '../../capture/sources';
import { runTags, type RunKind } from '../../workflows/search-attributes';
import { ensureSearchAttributes } from './search-attributes';
import { drainScheduleIdOf, drainShard, drainShards, drainWorkflowIdOf, type DrainShard } from '../../outbox/shards';

/**
 * What differs between the schedules. Each fires `workflowType` on its task queue, skipping a fire
 * while the previous run is still going; after downtime one run starts right away rather than
 * every missed one (`catchupWindow`, 1 minute unless said). The schedule appends the fire time to
 * `workflowId`: drain-2026-…Z.
 */
interface ScheduleDefinition {
  scheduleId: string;
  spec: (config: Config) => ScheduleOptions['spec'];
  workflowType: string;
  workflowId: string;
  /** The batch task queue (landing, export) or the pipeline's. */
  batch?: boolean;
  args: (config: Config) => unknown[];
  catchupWindow?: string;
  note: string;
  /** Its search attributes (workflows/search-attributes.ts) and the Web UI's one-line summary. */
  kind: RunKind;
  shard?: number;
  summary: string;
}

const every = (ms: number): ScheduleOptions['spec'] => ({ intervals: [{ every: ms }] });

/** One drain schedule per drain shard (outbox/shards.ts); one shard keeps the single drain's names. */
const drainSchedule = (shard: DrainShard): ScheduleDefinition => ({
  scheduleId: drainScheduleIdOf(shard),
  spec: (config) => every(config.DRAIN_INTERVAL_MS),
  workflowType: 'drainWorkflow',
  workflowId: drainWorkflowIdOf(shard),
  args: (config): [DrainWorkflowInput] => [
    {
      intervalMs: config.DRAIN_INTERVAL_MS,
      runMs: Math.max(config.CHAIN_RUN_MS, config.DRAIN_INTERVAL_MS),
      ...(shard.count > 1 ? { shard: { index: shard.index, count: shard.count } } : {}),
      batchSize: config.DRAIN_BATCH_SIZE,
      maxBatchSize: config.DRAIN_MAX_BATCH_SIZE,
      idleWaitMs: config.DRAIN_IDLE_WAIT_MS,
      activityBudgetMs: config.DRAIN_ACTIVITY_BUDGET_MS,
      // The backfill the drain starts by itself when the store lost its data.
      backfillChunkRows: config.BACKFILL_CHUNK_ROWS,
      backfillRowsPerSecond: config.BACKFILL_ROWS_PER_S,
    },
  ],
  note:
    shard.count === 1
      ? 'drains the CDC outbox into the Redis online store'
      : `drains shard ${shard.index} of ${shard.count} of the CDC outbox into the Redis online store`,
  kind: 'drain',
  ...(shard.count > 1 ? { shard: shard.index } : {}),
  summary:
    shard.count === 1
      ? 'Drain: outbox → Redis online store (state in the current details)'
      : `Drain shard ${shard.index} of ${shard.count}: outbox → Redis online store (state in the current details)`,
});

/** One capture schedule per source database (CAPTURE_MODE=logical): docs/capture.md. */
const captureSchedule = (source: string): ScheduleDefinition => ({
  scheduleId: `${names.captureScheduleIdPrefix}${source}`,
  spec: (config) => every(config.CAPTURE_INTERVAL_MS),
  workflowType: 'captureWorkflow',
  workflowId: `${names.captureWorkflowIdPrefix}${source}`,
  args: (config): [CaptureWorkflowInput] => [
    {
      source,
      intervalMs: config.CAPTURE_INTERVAL_MS,
      runMs: Math.max(config.CHAIN_RUN_MS, config.CAPTURE_INTERVAL_MS),
      activityBudgetMs: config.CAPTURE_ACTIVITY_BUDGET_MS,
    },
  ],
  note: `captures the ${source} database's changes from its replication slot into the outbox`,
  kind: 'capture',
  summary: `Capture of ${source}: replication slot → outbox (LSN and lag in the current details)`,
});

/** The capture schedules this configuration has (none with the trigger capture). */
export const captureScheduleIds = (config: Config): string[] =>
  config.CAPTURE_MODE === 'logical'
    ? captureSources(config).map((s) => `${names.captureScheduleIdPrefix}${s.name}`)
    : [];

const SCHEDULES: ScheduleDefinition[] = [
  {
    scheduleId: names.compactionScheduleId,
    spec: (config) => every(config.COMPACTION_INTERVAL_MS),
    workflowType: 'compactionWorkflow',
    workflowId: names.compactionWorkflowIdPrefix,
    // the run's bound in its input, not read from the workflow bundle: a deploy that changes the
    // default must not change the loop of a run already in flight (its replay would fail)
    args: (): [CompactionInput] => [{ maxCalls: WORKFLOW_INPUT_DEFAULTS.compactionMaxCalls }],
    note: 'prunes the outbox, retried dead letters and stale field tombstones',
    kind: 'compaction',
    summary: 'Compaction: prunes the outbox, retried dead letters and stale field tombstones',
  },
  {
    scheduleId: names.landingScheduleId,
    spec: (config) => every(config.LANDING_INTERVAL_MS),
    workflowType: 'landingWorkflow',
    workflowId: 'landing',
    batch: true,
    args: () => [{ maxCalls: WORKFLOW_INPUT_DEFAULTS.landingMaxCalls }],
    note: 'lands applied changes as Parquet for the nightly export',
    kind: 'landing',
    summary: 'Landing: applied changes → Parquet for the nightly export',
  },
  {
    scheduleId: names.exportScheduleId,
    spec: (config) => ({ calendars: [{ hour: config.EXPORT_HOUR_UTC, minute: 0 }] }),
    workflowType: 'exportWorkflow',
    workflowId: 'export-nightly',
    batch: true,
    args: () => [{}],
    catchupWindow: '6 hours',
    note: 'exports the previous UTC day as Parquet (training data)',
    kind: 'export',
    summary: 'Nightly export of the previous UTC day as Parquet (training data)',
  },
  {
    scheduleId: names.verifyScheduleId,
    spec: (config) => every(config.VERIFY_INTERVAL_MS),
    workflowType: 'sampledVerifyWorkflow',
    workflowId: names.verifyWorkflowIdPrefix,
    args: (config): [SampledVerifyInput] => [{ sample: config.VERIFY_SAMPLE_SKUS }],
    note: 'verifies a sample of the store against the source and repairs differences through the outbox',
    kind: 'verify',
    summary: 'Sampled verify: store vs source, differences repaired through the outbox',
  },
];

function scheduleOptions(d: ScheduleDefinition, config: Config, paused = false): ScheduleOptions {
  return {
    scheduleId: d.scheduleId,
    spec: d.spec(config),
    action: {
      type: 'startWorkflow',
      workflowType: d.workflowType,
      workflowId: d.workflowId,
      taskQueue: d.batch ? batchTaskQueue(config) : config.TEMPORAL_TASK_QUEUE,
      args: d.args(config),
      staticSummary: d.summary,
      staticDetails: `Started by the schedule \`${d.scheduleId}\`, which ${d.note}. Created by fresh-badges (scripts/lib/schedules.ts); docs/operations.md says how to operate it.`,
      ...(config.TEMPORAL_SEARCH_ATTRIBUTES ? { typedSearchAttributes: runTags(d.kind, d.shard) } : {}),
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: d.catchupWindow ?? '1 minute' },
    state: { note: d.note, paused },
  };
}

/** A drain shard's schedule options (its workflow input is what a fire starts the drain with). */
export const drainScheduleOptions = (config: Config, shard: DrainShard = drainShard(0, 1)): ScheduleOptions =>
  scheduleOptions(drainSchedule(shard), config);

/** A source's capture schedule options (its workflow input is what a fire starts the capture with). */
export const captureScheduleOptions = (config: Config, source: string): ScheduleOptions =>
  scheduleOptions(captureSchedule(source), config);

/** Every schedule but the drain shards' (drainScheduleIds lists those). */
export const ALL_SCHEDULE_IDS = [names.drainScheduleId, ...SCHEDULES.map((d) => d.scheduleId)];

/** The drain schedules of `shards` shards. */
export const drainScheduleIds = (shards: number) => drainShards(shards).map(drainScheduleIdOf);

/**
 * Creates or updates every schedule, with one drain schedule per shard of `shards` (the drain
 * layout's count: outbox/shards.ts), and deletes drain schedules of another count (a change of
 * DRAIN_SHARDS); returns what happened to the first drain schedule.
 */
export async function ensureSchedules(
  client: Client,
  config: Config,
  shards = 1,
  /** Drain schedules created now start paused (a re-split keeps an operator's pause). */
  opts: { pausedDrains?: boolean } = {},
): Promise<'created' | 'updated'> {
  if (config.TEMPORAL_SEARCH_ATTRIBUTES) await ensureSearchAttributes(client, config.TEMPORAL_NAMESPACE);
  const outcomes: ('created' | 'updated')[] = [];
  for (const shard of drainShards(shards))
    outcomes.push(await ensureSchedule(client, scheduleOptions(drainSchedule(shard), config, opts.pausedDrains)));
  if (config.CAPTURE_MODE === 'logical')
    for (const source of captureSources(config))
      await ensureSchedule(client, scheduleOptions(captureSchedule(source.name), config, opts.pausedDrains));
  for (const d of SCHEDULES) await ensureSchedule(client, scheduleOptions(d, config));
  await deleteOtherDrainSchedules(client, shards);
  await deleteOtherCaptureSchedules(client, config);
  return outcomes[0];
}

/** Capture schedules of sources this configuration does not have (another layout, or the trigger capture). */
async function deleteOtherCaptureSchedules(client: Client, config: Config): Promise<void> {
  const wanted = new Set(captureScheduleIds(config));
  const doomed = (await listedCaptureScheduleIds(client)).filter((id) => !wanted.has(id));
  for (const id of doomed) await client.schedule.getHandle(id).delete().catch(unlessNotFound);
}

/**
 * Deletes every capture schedule there is, listed or of the `sources` named (the list may not show
 * one created a moment ago): a hand-back to the trigger capture, so that no schedule fire starts a
 * capture while it runs or after (scripts/lib/capture-mode.ts). Returns the ids deleted.
 */
export async function deleteCaptureSchedules(client: Client, sources: readonly string[]): Promise<string[]> {
  const ids = new Set([
    ...sources.map((s) => `${names.captureScheduleIdPrefix}${s}`),
    ...(await listedCaptureScheduleIds(client)),
  ]);
  const deleted: string[] = [];
  for (const id of ids)
    if (
      (await client.schedule
        .getHandle(id)
        .delete()
        .then(() => true, unlessNotFound)) === true
    )
      deleted.push(id);
  return deleted;
}

/** The capture schedules the (eventually consistent) schedule list shows, by their id prefix. */
async function listedCaptureScheduleIds(client: Client): Promise<string[]> {
  const ids: string[] = [];
  for await (const s of client.schedule.list())
    if (s.scheduleId.startsWith(names.captureScheduleIdPrefix)) ids.push(s.scheduleId);
  return ids;
}

/** A capture schedule, and whether it is paused or absent. */
export interface CaptureSchedule {
  scheduleId: string;
  /** The source it captures (`fresh-badges-capture-<source>`). */
  source: string;
  /** `missing`: named by this configuration (CAPTURE_MODE=logical) but absent; `npm start` creates it. */
  state: 'active' | 'paused' | 'missing';
}

/**
 * The capture schedules there are, whatever the caller's own CAPTURE_MODE says (an operator's
 * shell may lack it while the workers capture from the WAL): every one listed by its id prefix,
 * and those this configuration names (the list may not show one created a moment ago), in that
 * order. Each is described, so one listed a moment after its deletion is left out.
 */
export async function captureSchedulesNow(client: Client, config: Config): Promise<CaptureSchedule[]> {
  const configured = captureScheduleIds(config);
  const ids = [...new Set([...configured, ...(await listedCaptureScheduleIds(client))])];
  const found: CaptureSchedule[] = [];
  for (const scheduleId of ids) {
    const source = scheduleId.slice(names.captureScheduleIdPrefix.length);
    const d = await client.schedule.getHandle(scheduleId).describe().catch(unlessNotFound);
    if (d) found.push({ scheduleId, source, state: d.state.paused ? 'paused' : 'active' });
    else if (configured.includes(scheduleId)) found.push({ scheduleId, source, state: 'missing' });
  }
  return found;
}

/** Triggers each capture schedule unless an operator paused it. */
export const triggerCaptures = (temporal: Client, config: Config): Promise<string[]> =>
  triggerUnlessPaused(temporal, captureScheduleIds(config));

const isDrainSchedule = (id: string) =>
  id === names.drainScheduleId || (id.startsWith(`${names.drainScheduleId}-`) && /-\d+of\d+$/.test(id));

/** Drain schedules of another shard count: their shards no longer exist. */
async function deleteOtherDrainSchedules(client: Client, shards: number): Promise<string[]> {
  const wanted = new Set(drainScheduleIds(shards));
  const doomed: string[] = [];
  for await (const s of client.schedule.list())
    if (isDrainSchedule(s.scheduleId) && !wanted.has(s.scheduleId)) doomed.push(s.scheduleId);
  // (the list is eventually consistent: a schedule deleted a moment ago may still be listed)
  for (const id of doomed) await client.schedule.getHandle(id).delete().catch(unlessNotFound);
  return doomed;
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

/** Whether an operator paused the drain: any drain schedule (of any shard count) is paused. */
export async function anyDrainSchedulePaused(client: Client): Promise<boolean> {
  for await (const s of client.schedule.list()) {
    if (!isDrainSchedule(s.scheduleId)) continue;
    const described = await client.schedule.getHandle(s.scheduleId).describe().catch(unlessNotFound);
    if (described?.state.paused) return true;
  }
  return false;
}

/** Swallows "no such schedule" (listed a moment after it was deleted); rethrows anything else. */
function unlessNotFound(err: unknown): undefined {
  if (err instanceof ScheduleNotFoundError) return undefined;
  throw err;
}

/** Triggers each shard's schedule unless an operator paused it. */
export const triggerDrains = (temporal: Client, shards: number): Promise<string[]> =>
  triggerUnlessPaused(temporal, drainScheduleIds(shards));

/** Triggers each schedule now (a run already going makes it a no-op) unless an operator paused it; returns those triggered. */
async function triggerUnlessPaused(temporal: Client, ids: string[]): Promise<string[]> {
  const triggered: string[] = [];
  for (const id of ids) {
    const h = temporal.schedule.getHandle(id);
    if ((await h.describe()).state.paused) continue;
    await h.trigger(ScheduleOverlapPolicy.SKIP);
    triggered.push(id);
  }
  return triggered;
}
