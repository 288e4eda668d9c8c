/**
 * The operator CLI: `npm run ops -- <command>`. Every command that starts work starts a Temporal
 * workflow with a meaningful id, so it is visible and controllable in the Web UI and could as well
 * be started from there or with the `temporal` CLI. Exit codes: 0 done, 1 failed (or verify found
 * mismatches), 2 bad usage.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import os from 'node:os';
import { ScheduleOverlapPolicy, WorkflowHandle } from '@temporalio/client';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { batchTaskQueue, ConfigurationError, names } from '../config';
import { listDeadLetters } from '../activities/dead-letters/retry';
import { formatPosition, parsePosition } from '../activities/replay/replay-range';
import type { VerifyReport } from '../reconcile/verify';
import {
  backfillWorkflow,
  BackfillProgress,
  exportWorkflow,
  replayWorkflow,
  ReplayProgress,
  retryDeadLettersWorkflow,
  stopDrainSignal,
  verifyWorkflow,
} from '../workflows';
import { dateArg, positiveInt } from './lib/cli-args';
import { createOpsContext, OpsContext, OpsError, stamp } from './ops/context';
import { inspectSku } from './ops/inspect';
import { followProgress } from './ops/progress';
import { printStatus, readStatus } from './ops/status';

/**
 * What the Temporal Web UI shows on an operator-started workflow without a query (user metadata):
 * what it does, who asked, from which command. The command line holds no secrets (they come from
 * the environment only).
 */
function operatorMetadata(summary: string): { staticSummary: string; staticDetails: string } {
  const who = `${os.userInfo().username}@${os.hostname()}`;
  return {
    staticSummary: summary,
    staticDetails: `Started by ${who} with \`npm run ops -- ${process.argv.slice(2).join(' ')}\` at ${new Date().toISOString()}.`,
  };
}

const positionArg = (v: string) => {
  try {
    return parsePosition(v);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};

function print(json: boolean, value: unknown, human: () => void) {
  if (json) console.log(JSON.stringify(value, null, 2));
  else human();
}

async function startAndMaybeWait<P>(
  ctx: OpsContext,
  what: string,
  start: () => Promise<WorkflowHandle>,
  wait: boolean,
  progress?: (p: P) => { value: number; total: number; label: string },
) {
  const handle = await start();
  console.log(
    `${what} started: workflow ${handle.workflowId} (Web UI: http://localhost:${ctx.config.TEMPORAL_UI_PORT}/namespaces/${ctx.config.TEMPORAL_NAMESPACE}/workflows/${handle.workflowId})`,
  );
  if (!wait) return undefined;
  return progress && process.stdout.isTTY ? followProgress<P>(handle, progress) : handle.result();
}

export function buildProgram(ctx: () => OpsContext): Command {
  const program = new Command()
    .name('npm run ops --')
    .description('operate the fresh-badges pipeline')
    .showHelpAfterError()
    .exitOverride();

  program
    .command('status')
    .description('drain state, lag (rows and seconds), last run, dead letters, schedule state')
    .option('--json', 'machine-readable output')
    .action(async (o) => {
      const s = await readStatus(ctx());
      print(o.json, s, () => printStatus(s));
    });

  program
    .command('pause')
    .description('pause the drain schedule and stop the running drain after its current batch')
    .action(async () => {
      const c = ctx();
      const temporal = await c.temporal();
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

  program
    .command('replay')
    .description('re-apply every retained change from a position up to the drain cursor (after a fix of feature logic)')
    .requiredOption('--from <position>', 'TXID:ID as `status` prints it, or "start"', positionArg)
    .option('--no-wait', 'start it and return')
    .action(async (o) => {
      const c = ctx();
      const temporal = await c.temporal();
      const r = (await startAndMaybeWait<ReplayProgress>(
        c,
        'replay',
        () =>
          temporal.workflow.start(replayWorkflow, {
            taskQueue: c.config.TEMPORAL_TASK_QUEUE,
            workflowId: `replay-${o.from.txid}-${o.from.id}-${stamp()}`,
            args: [{ from: o.from }],
            ...operatorMetadata(`Replay of retained changes after ${formatPosition(o.from)}`),
          }),
        o.wait,
        (p) => ({ value: p.rows, total: p.totalRows, label: 'replay' }),
      )) as ReplayProgress | undefined;
      if (r)
        console.log(
          `replayed ${r.rows} changes up to ${formatPosition(r.position)}; ${r.applied} store values re-written`,
        );
    });

  program
    .command('backfill')
    .description(
      'rebuild the online store from a snapshot of the source (the replica when REPLICA_DATABASE_URL is set)',
    )
    .option('--rate <rows/s>', 'rate limit on source rows read per second', positiveInt('--rate'))
    .option('--chunk <rows>', 'rows per chunk', positiveInt('--chunk'))
    .option('--no-wait', 'start it and return')
    .action(async (o) => {
      const c = ctx();
      const temporal = await c.temporal();
      const r = (await startAndMaybeWait<BackfillProgress>(
        c,
        'backfill',
        () =>
          temporal.workflow.start(backfillWorkflow, {
            taskQueue: c.config.TEMPORAL_TASK_QUEUE,
            workflowId: `backfill-${stamp()}`,
            args: [
              {
                reason: 'ops backfill',
                rowsPerSecond: o.rate ?? c.config.BACKFILL_ROWS_PER_S,
                chunkRows: o.chunk ?? c.config.BACKFILL_CHUNK_ROWS,
              },
            ],
            ...operatorMetadata(
              `Backfill of the whole store from a source snapshot, ${o.rate ?? c.config.BACKFILL_ROWS_PER_S} rows/s, chunks of ${o.chunk ?? c.config.BACKFILL_CHUNK_ROWS}`,
            ),
          }),
        o.wait,
        (p) => ({ value: p.rows, total: p.estimatedRows, label: `backfill ${p.table}` }),
      )) as { rows: number; counters: number } | undefined;
      if (r) console.log(`backfill done: ${r.rows} source rows, ${r.counters} load counters`);
    });

  program
    .command('verify')
    .description('reconcile the online store against the source; exit code 1 when anything differs')
    .option('--sample <n>', 'check n random SKUs instead of all', positiveInt('--sample'))
    .option('--json', 'machine-readable output')
    .action(async (o) => {
      const c = ctx();
      const temporal = await c.temporal();
      const r = (await startAndMaybeWait(
        c,
        'verify',
        () =>
          temporal.workflow.start(verifyWorkflow, {
            taskQueue: c.config.TEMPORAL_TASK_QUEUE,
            workflowId: `verify-${stamp()}`,
            args: [{ sample: o.sample }],
            ...operatorMetadata(
              o.sample
                ? `Verify of ${o.sample} random SKUs, every FC, region and load`
                : 'Verify of every SKU, FC, region and load',
            ),
          }),
        true,
      )) as VerifyReport;
      print(o.json, r, () => {
        console.log(
          `${r.mode}: ${r.checkedSkus} SKUs and ${r.checkedBadges} (SKU, region) badges checked; ${r.mismatches.length} mismatch(es)${r.settled ? ` (${r.settled} more were changes in flight)` : ''}`,
        );
        for (const m of r.mismatches.slice(0, 50))
          console.log(
            `  ${m.sku ?? '-'}  ${m.feature} ${m.key}: source=${m.source ?? '(none)'} store=${m.store ?? '(none)'}`,
          );
        if (r.mismatches.length > 50) console.log(`  … and ${r.mismatches.length - 50} more (--json for all)`);
      });
      if (r.mismatches.length) process.exitCode = 1;
    });

  program
    .command('export')
    .description('export one UTC day as Parquet (changes, feature history, end-of-day badges) from the landing area')
    .requiredOption('--date <YYYY-MM-DD>', 'the UTC day', dateArg)
    .action(async (o) => {
      const c = ctx();
      const temporal = await c.temporal();
      const r = (await startAndMaybeWait(
        c,
        'export',
        () =>
          temporal.workflow.start(exportWorkflow, {
            taskQueue: batchTaskQueue(c.config),
            workflowId: `export-${o.date}-${stamp()}`,
            args: [{ date: o.date }],
            ...operatorMetadata(`Parquet export of UTC day ${o.date}`),
          }),
        true,
      )) as {
        changes: number;
        badges: number;
        dir: string;
      };
      console.log(`exported ${o.date}: ${r.changes} changes, ${r.badges} end-of-day badges -> ${r.dir}`);
    });

  program
    .command('inspect')
    .description('one SKU: what the store holds, what the source says, and its badge per region')
    .argument('<sku>', 'SKU id')
    .option('--region <region>', 'only this region')
    .action(async (sku, o) => {
      console.log(JSON.stringify(await inspectSku(ctx(), sku, o.region), null, 2));
    });

  const dl = program.command('dead-letters').description('changes the drain could not apply');
  dl.command('list')
    .description('list dead letters (oldest first)')
    .option('--limit <n>', 'how many', positiveInt('--limit'), 20)
    .option('--all', 'include retried ones')
    .option('--json', 'machine-readable output')
    .action(async (o) => {
      const r = await listDeadLetters(ctx().pool(), { limit: o.limit, includeRetried: o.all });
      print(o.json, r, () => {
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
      const c = ctx();
      const ids: string[] | undefined = o.id;
      for (const id of ids ?? [])
        if (!/^\d+$/.test(id)) throw new OpsError(`--id takes dead letter numbers, got ${JSON.stringify(id)}`, 2);
      const temporal = await c.temporal();
      const r = (await startAndMaybeWait(
        c,
        'dead-letter retry',
        () =>
          temporal.workflow.start(retryDeadLettersWorkflow, {
            taskQueue: c.config.TEMPORAL_TASK_QUEUE,
            workflowId: `dead-letters-retry-${stamp()}`,
            args: [{ ids }],
            ...operatorMetadata(
              ids?.length ? `Retry of dead letters ${ids.join(', ')}` : 'Retry of every dead letter not yet retried',
            ),
          }),
        true,
      )) as {
        retried: number;
        failed: number;
        errors: { id: string; error: string }[];
      };
      console.log(`${r.retried} applied, ${r.failed} still failing`);
      for (const e of r.errors.slice(0, 20)) console.log(`  #${e.id}: ${e.error}`);
      if (r.failed) process.exitCode = 1;
    });
  return program;
}

async function main(argv: string[]): Promise<number> {
  let context: OpsContext | undefined;
  const ctx = () => (context ??= createOpsContext());
  try {
    await buildProgram(ctx).parseAsync(argv, { from: 'user' });
    return Number(process.exitCode ?? 0);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2; // usage (commander printed it)
    if (err instanceof ConfigurationError) {
      console.error(`ops: ${err.message}`);
      return 2;
    }
    console.error(`ops: ${(err as Error).message}`);
    return err instanceof OpsError ? err.exitCode : 1;
  } finally {
    await context?.close();
  }
}

if (require.main === module) void main(process.argv.slice(2)).then((code) => process.exit(code));
