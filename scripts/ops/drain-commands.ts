/** `ops status`, `ops pause`, `ops resume`, `ops reshard`: the drain's state, its schedule and its shards. */
import { setTimeout as sleep } from 'node:timers/promises';
import { type Client, ScheduleOverlapPolicy } from '@temporalio/client';
import type { Command } from 'commander';
import type { WorkflowHandle } from '@temporalio/client';
import { checkShardCount } from '../../activities/drain/reshard';
import { MAX_DRAIN_SHARDS, readDrainLayout } from '../../outbox';
import { positiveInt } from '../lib/cli-args';
import { captureSchedulesNow, drainScheduleIds, type CaptureSchedule } from '../lib/schedules';
import { stopCaptureRuns } from '../lib/capture-mode';
import { ReshardBusy, startOrAttachReshard } from '../lib/reshard';
import { reshardProgressQuery, stopDrainSignal, type ReshardProgress } from '../../workflows';
import { OpsContext, OpsError } from './context';
import { printJsonOr } from './output';
import { printStatus, readStatus, RUNNING_DRAINS_QUERY } from './status';

export function drainCommands(program: Command, ctx: () => OpsContext): void {
  registerStatus(program, ctx);
  registerPause(program, ctx);
  registerResume(program, ctx);
  registerReshard(program, ctx);
}

function registerStatus(program: Command, ctx: () => OpsContext): void {
  program
    .command('status')
    .description('drain state, lag (rows and seconds), last run, dead letters, schedule state')
    .option('--json', 'machine-readable output')
    .action(async (o) => {
      const s = await readStatus(ctx());
      printJsonOr(o.json, s, () => printStatus(s));
    });
}

function registerPause(program: Command, ctx: () => OpsContext): void {
  program
    .command('pause')
    .description(
      'pause the drain schedule(s) and every capture schedule, and stop the running runs after their current batch',
    )
    .action(async () => {
      const temporal = await ctx().temporal();
      const captures = await captureSchedulesNow(temporal, ctx().config);
      for (const id of [...present(captures), ...(await drainScheduleIdsNow(ctx()))])
        await temporal.schedule.getHandle(id).pause('paused by an operator (ops pause)');
      const stopped = [...(await stopCaptureRuns(temporal)), ...(await stopRunningDrains(temporal))];
      const capturing = present(captures).length > 0;
      console.log(
        `${capturing ? 'capture and ' : ''}drain paused${stopped.length ? `; stopped ${stopped.join(', ')}` : ''}. ${capturing ? 'Changes wait in the replication slots' : 'Changes accumulate in the outbox'}; reads answer stale: true. Resume with: npm run ops -- resume`,
      );
      sayMissing(captures);
    });
}

/** Signals every running drain to stop after its batch, waiting up to 30 s for each; returns their ids. */
async function stopRunningDrains(temporal: Client): Promise<string[]> {
  const stopped: string[] = [];
  for await (const wf of temporal.workflow.list({ query: RUNNING_DRAINS_QUERY })) {
    const h = temporal.workflow.getHandle(wf.workflowId);
    await h.signal(stopDrainSignal);
    await Promise.race([h.result().catch(() => undefined), sleep(30_000)]);
    stopped.push(wf.workflowId);
  }
  return stopped;
}

function registerResume(program: Command, ctx: () => OpsContext): void {
  program
    .command('resume')
    .description(
      'resume the drain schedule(s) and every capture schedule and start them now (the drain works off the backlog, then returns to micro-batches)',
    )
    .action(async () => {
      const temporal = await ctx().temporal();
      const captures = await captureSchedulesNow(temporal, ctx().config);
      const ids = await drainScheduleIdsNow(ctx());
      for (const id of [...present(captures), ...ids]) await unpauseAndTrigger(temporal, id);
      console.log(
        `${present(captures).length ? 'capture (from the last confirmed position of each slot) and ' : ''}drain resumed and triggered${ids.length > 1 ? ` (${ids.length} shards)` : ''}`,
      );
      sayMissing(captures);
    });
}

/** The capture schedules that exist. */
const present = (captures: CaptureSchedule[]) => captures.filter((s) => s.state !== 'missing').map((s) => s.scheduleId);

/** Capture schedules this configuration names that do not exist: nothing to pause or resume there. */
function sayMissing(captures: CaptureSchedule[]): void {
  const missing = captures.filter((s) => s.state === 'missing').map((s) => s.scheduleId);
  if (missing.length)
    console.log(`no capture schedule ${missing.join(', ')} (CAPTURE_MODE=logical names it; npm start creates it)`);
}

/** Unpauses one schedule, waits until the scheduler shows it unpaused, then triggers it. */
async function unpauseAndTrigger(temporal: Client, id: string): Promise<void> {
  const h = temporal.schedule.getHandle(id);
  await h.unpause('resumed by an operator (ops resume)');
  // Let the scheduler apply the unpause before the trigger: two patches sent back to back
  // were seen to lose the unpause (the schedule stayed paused).
  const deadline = Date.now() + 10_000;
  while ((await h.describe()).state.paused) {
    if (Date.now() > deadline)
      throw new OpsError(`the schedule ${id} did not unpause within 10 s; check it in the Web UI`);
    await sleep(100);
  }
  await h.trigger(ScheduleOverlapPolicy.SKIP);
}

function registerReshard(program: Command, ctx: () => OpsContext): void {
  program
    .command('reshard')
    .description(
      'change the number of drain shards (DRAIN_SHARDS) on a live install, as a Temporal workflow (drain-reshard): every shard drains up to one snapshot, then they are re-split there; nothing is lost. Interrupting this command does not stop the workflow',
    )
    .requiredOption(
      '--shards <n>',
      `new number of drain shards, 1 to ${MAX_DRAIN_SHARDS} and at most STORE_PARTITIONS`,
      positiveInt('--shards'),
    )
    .option(
      '--timeout <seconds>',
      'the workflow gives up (and lifts the freeze) if the shards have not met by then',
      positiveInt('--timeout'),
      600,
    )
    .option('--no-wait', 'start it (or find it running) and return')
    .option('--json', 'machine-readable output')
    .action((o) => reshard(ctx(), o));
}

/** `ops reshard`: starts the re-split (or attaches to the one running) and, unless --no-wait, follows it to its end. */
async function reshard(
  c: OpsContext,
  o: { shards: number; timeout: number; wait: boolean; json?: boolean },
): Promise<void> {
  const shards: number = o.shards;
  try {
    checkShardCount(shards, c.keys.partitions.length);
  } catch (err) {
    throw new OpsError((err as Error).message);
  }
  const temporal = await c.temporal();
  const { handle, attached } = await startOrAttachReshard(temporal, c.config, c.pool(), shards, {
    timeoutMs: o.timeout * 1000,
    startedBy: `npm run ops -- ${process.argv.slice(2).join(' ')}`,
  }).catch((err) => {
    if (err instanceof ReshardBusy) throw new OpsError(err.message);
    throw err;
  });
  const link = `http://localhost:${c.config.TEMPORAL_UI_PORT}/namespaces/${c.config.TEMPORAL_NAMESPACE}/workflows/${handle.workflowId}`;
  if (!o.json)
    console.log(
      `${attached ? 'following the re-split already running' : 're-split started'}: workflow ${handle.workflowId} (Web UI: ${link}); Ctrl-C stops following, not the re-split`,
    );
  if (!o.wait) {
    if (o.json) console.log(JSON.stringify({ workflowId: handle.workflowId, attached }));
    return;
  }
  let result: ReshardProgress;
  try {
    result = await followReshard(handle, !!o.json);
  } catch (err) {
    throw new OpsError(`the re-split failed: ${failureMessage(err)}`);
  }
  printJsonOr(!!o.json, result, () => console.log(reshardSummary(result, c.config.DRAIN_SHARDS)));
}

/** The human-readable line for a finished re-split. */
function reshardSummary(result: ReshardProgress, configuredShards: number): string {
  return result.phase === 'unchanged'
    ? `already ${result.to} drain shard(s); schedules checked`
    : `drain shards: ${result.from} -> ${result.to} at snapshot ${result.frozenAt}, first batch ${result.firstBatch}${result.paused ? '; the drain stays PAUSED as an operator left it (npm run ops -- resume)' : '; schedules triggered'}${result.to !== configuredShards ? `. Set DRAIN_SHARDS=${result.to} in the workers' configuration too` : ''}`;
}

/** Prints the run's phase as it changes, until it ends; returns its result. */
async function followReshard(handle: WorkflowHandle, quiet: boolean): Promise<ReshardProgress> {
  const result = handle.result() as Promise<ReshardProgress>;
  let done = false;
  void result.then(
    () => (done = true),
    () => (done = true),
  );
  let last = '';
  while (!done) {
    const p = await handle.query(reshardProgressQuery).catch(() => null);
    const line = p ? `${p.phase}${p.frozenAt ? ` (frozen at ${p.frozenAt})` : ''}` : '';
    if (line && line !== last && !quiet) console.log(`  ${line}`);
    last = line || last;
    await Promise.race([result.catch(() => undefined), sleep(1_000)]);
  }
  return result;
}

function failureMessage(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  while (e?.cause) e = e.cause as typeof e;
  return e?.message ?? String(err);
}

/** The drain schedules of the shard count in force. */
async function drainScheduleIdsNow(c: OpsContext): Promise<string[]> {
  return drainScheduleIds((await readDrainLayout(c.pool())).shards);
}
