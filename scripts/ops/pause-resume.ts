/**
 * `ops pause` and `ops resume`: the drain schedules of the shard count in force and every capture
 * schedule there is (whatever this shell's CAPTURE_MODE says: the workers' decides), and the
 * running chains stopped, confirmed (scripts/lib/stop-chains.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type Client, ScheduleOverlapPolicy } from '@temporalio/client';
import type { Command } from 'commander';
import { readDrainLayout } from '../../outbox';
import { positiveInt } from '../lib/cli-args';
import { captureSchedulesNow, drainScheduleIds, type CaptureSchedule } from '../lib/schedules';
import { CHAIN_TYPES, stopChains } from '../lib/stop-chains';
import { OpsContext, OpsError } from './context';

export function registerPause(program: Command, ctx: () => OpsContext): void {
  program
    .command('pause')
    .description(
      'pause the drain schedule(s) and every capture schedule, and stop the running drains and captures after their current batch; exit 1 if one is still running after --wait',
    )
    .option(
      '--wait <seconds>',
      'how long to wait for the running drains and captures to end',
      positiveInt('--wait'),
      30,
    )
    .action((o: { wait: number }) => pause(ctx(), o.wait));
}

async function pause(c: OpsContext, waitS: number): Promise<void> {
  const temporal = await c.temporal();
  const captures = await captureSchedulesNow(temporal, c.config);
  const schedules = [...present(captures), ...(await drainScheduleIdsNow(c))];
  for (const id of schedules) await setPaused(temporal, id, true);
  const { stopped, stillRunning } = await stopChains(temporal, {
    types: CHAIN_TYPES,
    pool: c.pool(),
    scheduleIds: schedules,
    taskQueues: [c.config.TEMPORAL_TASK_QUEUE],
    timeoutMs: waitS * 1000,
  });
  const capturing = present(captures).length > 0;
  console.log(
    `${capturing ? 'capture and ' : ''}drain paused${stopped.length ? `; stopped ${stopped.join(', ')}` : ''}. ${capturing ? 'Changes wait in the replication slots' : 'Changes accumulate in the outbox'}; reads answer stale: true. Resume with: npm run ops -- resume`,
  );
  sayMissing(captures);
  if (stillRunning.length)
    throw new OpsError(
      `still running ${waitS} s after the stop signal: ${stillRunning.join(', ')} (is a worker running them? see each in the Web UI); the schedules stay paused; run pause again (--wait S) to wait longer`,
    );
}

export function registerResume(program: Command, ctx: () => OpsContext): void {
  program
    .command('resume')
    .description(
      'resume the drain schedule(s) and every capture schedule and start them now (the drain works off the backlog, then returns to micro-batches)',
    )
    .action(() => resume(ctx()));
}

async function resume(c: OpsContext): Promise<void> {
  const temporal = await c.temporal();
  const captures = await captureSchedulesNow(temporal, c.config);
  const drains = await drainScheduleIdsNow(c);
  for (const id of [...present(captures), ...drains]) await unpauseAndTrigger(temporal, id);
  console.log(
    `${present(captures).length ? 'capture (from the last confirmed position of each slot) and ' : ''}drain resumed and triggered${drains.length > 1 ? ` (${drains.length} shards)` : ''}`,
  );
  sayMissing(captures);
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
  await setPaused(temporal, id, false);
  await temporal.schedule.getHandle(id).trigger(ScheduleOverlapPolicy.SKIP);
}

/**
 * Pauses or unpauses one schedule and waits until the scheduler shows it so: a trigger sent right
 * after an unpause was seen to lose the unpause (the schedule stayed paused), and the runs a
 * paused schedule started are read from its description.
 */
async function setPaused(temporal: Client, id: string, paused: boolean): Promise<void> {
  const h = temporal.schedule.getHandle(id);
  if (paused) await h.pause('paused by an operator (ops pause)');
  else await h.unpause('resumed by an operator (ops resume)');
  const deadline = Date.now() + 10_000;
  while ((await h.describe()).state.paused !== paused) {
    if (Date.now() > deadline)
      throw new OpsError(
        `the schedule ${id} did not ${paused ? 'pause' : 'unpause'} within 10 s; check it in the Web UI`,
      );
    await sleep(100);
  }
}

/** The drain schedules of the shard count in force. */
async function drainScheduleIdsNow(c: OpsContext): Promise<string[]> {
  return drainScheduleIds((await readDrainLayout(c.pool())).shards);
}
