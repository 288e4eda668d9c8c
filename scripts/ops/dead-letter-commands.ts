/** `ops dead-letters list|retry|discard`: changes the drain could not apply. */
import type { Command } from 'commander';
import { listDeadLetters, type DeadLetter } from '../../activities/dead-letters/retry';
import { discardDeadLettersWorkflow, retryDeadLettersWorkflow } from '../../workflows';
import { positiveInt } from '../lib/cli-args';
import { OpsContext, OpsError, stamp } from './context';
import { operatorName, runOperatorWorkflow } from './operator-workflow';
import { printJsonOr } from './output';

export function deadLetterCommands(program: Command, ctx: () => OpsContext): void {
  const dl = program.command('dead-letters').description('changes the drain could not apply');
  registerList(dl, ctx);
  registerRetry(dl, ctx);
  registerDiscard(dl, ctx);
}

function registerList(dl: Command, ctx: () => OpsContext): void {
  dl.command('list')
    .description('list the waiting dead letters (oldest first)')
    .option('--limit <n>', 'how many', positiveInt('--limit'), 20)
    .option('--all', 'include those already applied by a retry or discarded')
    .option('--json', 'machine-readable output')
    .action(async (o) => {
      const r = await listDeadLetters(ctx().pool(), { limit: o.limit, includeRetried: o.all });
      printJsonOr(o.json, r, () => {
        console.log(`${r.total} dead letter(s)${o.all ? '' : ' waiting'}`);
        for (const d of r.rows)
          console.log(
            `  #${d.id} at ${d.outbox_txid}:${d.outbox_id} ${d.tbl ?? '?'} ${d.op ?? '?'} ${d.key ?? '?'}${settled(d)}: ${d.error}`,
          );
      });
    });
}

/** " (retried)", " (discarded by who at when: why)", or nothing for a waiting one. */
function settled(d: DeadLetter): string {
  if (d.retried_at) return ' (retried)';
  if (!d.discarded_at) return '';
  const why = d.discard_reason ? `: ${d.discard_reason}` : '';
  return ` (discarded by ${d.discarded_by ?? '?'} at ${new Date(d.discarded_at).toISOString()}${why})`;
}

/** --id values: dead letter numbers, or a usage error. */
function checkIds(ids: string[] | undefined): void {
  for (const id of ids ?? [])
    if (!/^\d{1,18}$/.test(id)) throw new OpsError(`--id takes dead letter numbers, got ${JSON.stringify(id)}`, 2);
}

function registerRetry(dl: Command, ctx: () => OpsContext): void {
  dl.command('retry')
    .description('apply dead letters again (all waiting ones, or --id …)')
    .option('--id <id...>', 'only these dead letter ids')
    .action(async (o) => {
      const ids: string[] | undefined = o.id;
      checkIds(ids);
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
      if (r.failed)
        console.log(
          'fix the cause and retry again, or give up on them: npm run ops -- dead-letters discard --id N… --reason "…"',
        );
      if (r.failed) process.exitCode = 1;
    });
}

function registerDiscard(dl: Command, ctx: () => OpsContext): void {
  dl.command('discard')
    .description(
      'give up on dead letters: they stop counting as waiting and are never retried; the rows stay, with who, when and why (until DEAD_LETTER_RETENTION_D)',
    )
    .option('--id <id...>', 'these dead letter ids')
    .option('--all', 'every waiting dead letter')
    .option('--reason <text>', 'why, kept with each row')
    .action(async (o) => {
      const ids: string[] | undefined = o.id;
      if (!!ids?.length === !!o.all) throw new OpsError('discard takes either --id N… or --all', 2);
      checkIds(ids);
      const r = (await runOperatorWorkflow(ctx(), {
        what: 'dead-letter discard',
        workflow: discardDeadLettersWorkflow,
        workflowId: `dead-letters-discard-${stamp()}`,
        args: [{ ids, all: !!o.all, by: operatorName(), reason: o.reason }],
        summary: `Discard of ${ids?.length ? `dead letters ${ids.join(', ')}` : 'every waiting dead letter'}${o.reason ? `: ${o.reason}` : ''}`,
        wait: true,
      }))!;
      console.log(
        `${r.discarded.length} discarded${r.discarded.length ? ` (${r.discarded.map((id) => `#${id}`).join(', ')})` : ''}`,
      );
      if (r.notWaiting.length) {
        console.log(`not waiting (already applied or discarded, or no such id): ${r.notWaiting.join(', ')}`);
        process.exitCode = 1;
      }
    });
}
