/** `ops status`, `ops pause`, `ops resume`: the drain's state and its schedule. */
import { setTimeout as sleep } from 'node:timers/promises';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import type { Command } from 'commander';
import { names } from '../../config';
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
      await temporal.schedule.getHandle(names.drainScheduleId).pause('paused by an operator (ops pause)');
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
      const h = temporal.schedule.getHandle(names.drainScheduleId);
      await h.unpause('resumed by an operator (ops resume)');
      // Let the scheduler apply the unpause before the trigger: two patches sent back to back
      // were seen to lose the unpause (the schedule stayed paused).
      const deadline = Date.now() + 10_000;
      while ((await h.describe()).state.paused) {
        if (Date.now() > deadline)
          throw new OpsError('the schedule did not unpause within 10 s; check it in the Web UI');
        await sleep(100);
      }
      await h.trigger(ScheduleOverlapPolicy.SKIP);
      console.log('drain resumed and triggered');
    });
}
