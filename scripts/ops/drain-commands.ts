/** `ops status`, `ops pause`, `ops resume`: the drain's state and its schedule. */
import { setTimeout as sleep } from 'node:timers/promises';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import type { Command } from 'commander';
import { reshardDrain, ReshardError } from '../../activities/drain/reshard';
import { MAX_DRAIN_SHARDS, readDrainLayout } from '../../outbox';
import { positiveInt } from '../lib/cli-args';
import { drainScheduleIds, ensureSchedules, triggerDrains } from '../lib/schedules';
import { stopDrainSignal } from '../../workflows';
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
      'change the number of drain shards (DRAIN_SHARDS) on a live install: every shard drains up to one snapshot, then they are re-split there; nothing is lost',
    )
    .requiredOption(
      '--shards <n>',
      `new number of drain shards, 1 to ${MAX_DRAIN_SHARDS} and at most STORE_PARTITIONS`,
      positiveInt('--shards'),
    )
    .option(
      '--timeout <seconds>',
      'give up (and lift the freeze) if the shards have not met by then',
      positiveInt('--timeout'),
      600,
    )
    .option('--json', 'machine-readable output')
    .action(async (o) => {
      const shards: number = o.shards;
      const timeoutS: number = o.timeout;
      const c = ctx();
      const result = await reshardDrain(
        {
          pool: c.pool(),
          redis: await c.redis(),
          keys: c.keys,
          config: c.config,
          progress: o.json ? undefined : (l) => console.log(l),
        },
        shards,
        { timeoutMs: timeoutS * 1000 },
      ).catch((err) => {
        if (err instanceof ReshardError) throw new OpsError(err.message);
        throw err;
      });
      // One drain schedule per shard of the new layout, started now (an operator's pause is kept).
      const temporal = await c.temporal();
      await ensureSchedules(temporal, c.config, result.to);
      const triggered = await triggerDrains(temporal, result.to);
      printJsonOr(o.json, { ...result, triggered }, () =>
        console.log(
          result.frozenAt === null
            ? `already ${result.to} drain shard(s); schedules checked`
            : `drain shards: ${result.from} -> ${result.to} at snapshot ${result.frozenAt} in ${(result.ms / 1000).toFixed(1)} s; schedules ${triggered.join(', ')} triggered${result.to !== c.config.DRAIN_SHARDS ? `. Set DRAIN_SHARDS=${result.to} in the workers' configuration too` : ''}`,
        ),
      );
    });
}

/** The drain schedules of the shard count in force. */
async function drainScheduleIdsNow(c: OpsContext): Promise<string[]> {
  return drainScheduleIds((await readDrainLayout(c.pool())).shards);
}
