/** `ops status`, `ops pause`, `ops resume`, `ops reshard`: the drain's state, its schedule and its shards. */
import { setTimeout as sleep } from 'node:timers/promises';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import type { Command } from 'commander';
import type { WorkflowHandle } from '@temporalio/client';
import { checkShardCount } from '../../activities/drain/reshard';
import { MAX_DRAIN_SHARDS, readDrainLayout } from '../../outbox';
import { positiveInt } from '../lib/cli-args';
import { drainScheduleIds } from '../lib/schedules';
import { ReshardBusy, startOrAttachReshard } from '../lib/reshard';
import { reshardProgressQuery, stopDrainSignal, type ReshardProgress } from '../../workflows';
import { OpsContext, OpsError } from './context';
import { printJsonOr } from './output';
import { printStatus, readStatus } from './status';

export function drainCommands(program: Command, ctx: () => OpsContext): void {
  program
    .command('status')
    .description('drain state, lag (rows and seconds), last run, dead letters, schedule state')
    .option('--json', 'machine-readable output')
    .action(async (o) => {
      const s = await readStatus(ctx());
      printJsonOr(o.json, s, () => printStatus(s));
    });

  program
    .command('pause')
    .description('pause the drain schedule and stop the running drain after its current batch')
    .action(async () => {
      const temporal = await ctx().temporal();
      for (const id of await drainScheduleIdsNow(ctx()))
        await temporal.schedule.getHandle(id).pause('paused by an operator (ops pause)');
      const stopped: string[] = [];
      for await (const wf of temporal.workflow.list({
        query: `WorkflowType = 'drainWorkflow' AND ExecutionStatus = 'Running'`,
      })) {
        const h = temporal.workflow.getHandle(wf.workflowId);
        await h.signal(stopDrainSignal);
        await Promise.race([h.result().catch(() => undefined), sleep(30_000)]);
        stopped.push(wf.workflowId);
      }
      console.log(
        `drain paused${stopped.length ? `; stopped ${stopped.join(', ')}` : ''}. Changes accumulate in the outbox; reads answer stale: true. Resume with: npm run ops -- resume`,
      );
    });

  program
    .command('resume')
    .description(
      'resume the drain schedule and start a drain now (it works off the backlog, then returns to micro-batches)',
    )
    .action(async () => {
      const temporal = await ctx().temporal();
      const ids = await drainScheduleIdsNow(ctx());
      for (const id of ids) {
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
      console.log(`drain resumed and triggered${ids.length > 1 ? ` (${ids.length} shards)` : ''}`);
    });

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
    .action(async (o) => {
      const shards: number = o.shards;
      const c = ctx();
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
        result = await followReshard(handle, o.json);
      } catch (err) {
        throw new OpsError(`the re-split failed: ${failureMessage(err)}`);
      }
      printJsonOr(o.json, result, () =>
        console.log(
          result.phase === 'unchanged'
            ? `already ${result.to} drain shard(s); schedules checked`
            : `drain shards: ${result.from} -> ${result.to} at snapshot ${result.frozenAt}, first batch ${result.firstBatch}${result.paused ? '; the drain stays PAUSED as an operator left it (npm run ops -- resume)' : '; schedules triggered'}${result.to !== c.config.DRAIN_SHARDS ? `. Set DRAIN_SHARDS=${result.to} in the workers' configuration too` : ''}`,
        ),
      );
    });
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
