/** `ops status`, `ops pause`, `ops resume` (pause-resume.ts), `ops reshard`: the drain's state, its schedule and its shards. */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import type { WorkflowHandle } from '@temporalio/client';
import { checkShardCount } from '../../activities/drain/reshard';
import { MAX_DRAIN_SHARDS } from '../../outbox';
import { intBetween, positiveInt } from '../lib/cli-args';
import { ReshardBusy, startOrAttachReshard } from '../lib/reshard';
import { reshardProgressQuery, type ReshardProgress } from '../../workflows';
import { OpsContext, OpsError } from './context';
import { printJsonOr } from './output';
import { registerPause, registerResume } from './pause-resume';
import { printStatus, readStatus } from './status';

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
      // below the catch-up activity's 1-hour start-to-close (workflows/activity-options.ts): each
      // attempt counts the timeout from its own start, so a longer one was cut at the hour and
      // started again, and the run never gave up (the shards frozen, reads stale, until cancelled)
      'the workflow gives up (and lifts the freeze) if the shards have not met by then (1-3000)',
      intBetween(1, 3000)('--timeout'),
      600,
    )
    .option('--no-wait', 'start it (or find it running) and return')
    .option('--json', 'machine-readable output')
    // whether --timeout was given: it cannot change a re-split already running, which is said
    .action((o, cmd: Command) => reshard(ctx(), { ...o, timeoutGiven: cmd.getOptionValueSource('timeout') === 'cli' }));
}

/** `ops reshard`: starts the re-split (or attaches to the one running) and, unless --no-wait, follows it to its end. */
async function reshard(
  c: OpsContext,
  o: { shards: number; timeout: number; timeoutGiven?: boolean; wait: boolean; json?: boolean },
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
  if (attached && o.timeoutGiven)
    console.error(
      `note: --timeout ${o.timeout} is not applied: the re-split already running keeps the timeout it was started with`,
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
