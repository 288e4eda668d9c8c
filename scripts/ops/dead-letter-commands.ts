/** `ops dead-letters list|retry`: changes the drain could not apply. */
import type { Command } from 'commander';
import { listDeadLetters } from '../../activities/dead-letters/retry';
import { retryDeadLettersWorkflow } from '../../workflows';
import { positiveInt } from '../lib/cli-args';
import { OpsContext, OpsError, stamp } from './context';
import { runOperatorWorkflow } from './operator-workflow';
import { printJsonOr } from './output';

export function deadLetterCommands(program: Command, ctx: () => OpsContext): void {
  const dl = program.command('dead-letters').description('changes the drain could not apply');
  dl.command('list')
    .description('list dead letters (oldest first)')
    .option('--limit <n>', 'how many', positiveInt('--limit'), 20)
    .option('--all', 'include retried ones')
    .option('--json', 'machine-readable output')
    .action(async (o) => {
      const r = await listDeadLetters(ctx().pool(), { limit: o.limit, includeRetried: o.all });
      printJsonOr(o.json, r, () => {
        console.log(`${r.total} dead letter(s)${o.all ? '' : ' waiting'}`);
        for (const d of r.rows)
          console.log(
            `  #${d.id} at ${d.outbox_txid}:${d.outbox_id} ${d.tbl ?? '?'} ${d.op ?? '?'} ${d.key ?? '?'}${d.retried_at ? ' (retried)' : ''}: ${d.error}`,
          );
      });
    });
  dl.command('retry')
    .description('apply dead letters again (all waiting ones, or --id …)')
    .option('--id <id...>', 'only these dead letter ids')
    .action(async (o) => {
      const ids: string[] | undefined = o.id;
      for (const id of ids ?? [])
        if (!/^\d+$/.test(id)) throw new OpsError(`--id takes dead letter numbers, got ${JSON.stringify(id)}`, 2);
      const r = (await runOperatorWorkflow(ctx(), {
        what: 'dead-letter retry',
        workflow: retryDeadLettersWorkflow,
        workflowId: `dead-letters-retry-${stamp()}`,
        args: [{ ids }],
        summary: ids?.length ? `Retry of dead letters ${ids.join(', ')}` : 'Retry of every dead letter not yet retried',
        wait: true,
      }))!;
      console.log(`${r.retried} applied, ${r.failed} still failing`);
      for (const e of r.errors.slice(0, 20)) console.log(`  #${e.id}: ${e.error}`);
      if (r.failed) process.exitCode = 1;
    });
}
