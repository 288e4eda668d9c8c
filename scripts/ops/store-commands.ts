/** `ops backfill`, `ops verify`, `ops export`, `ops inspect`, `ops explain`: work on the store and the export (`ops replay`: replay-command.ts). */
import type { Command } from 'commander';
import { WorkflowFailedError } from '@temporalio/client';
import { batchTaskQueue } from '../../config';
import type { VerifyReport } from '../../reconcile/verify';
import { backfillWorkflow, BackfillProgress, exportWorkflow, verifyWorkflow } from '../../workflows';
import { dateArg, intBetween, positiveInt } from '../lib/cli-args';
import { OpsContext, stamp } from './context';
import { explainSku } from './explain';
import { printExplanation } from './explain-print';
import { inspectSku, printInspection } from './inspect';
import { runOperatorWorkflow } from './operator-workflow';
import { printJsonOr } from './output';

export function storeCommands(program: Command, ctx: () => OpsContext): void {
  registerBackfill(program, ctx);
  registerVerify(program, ctx);
  registerExport(program, ctx);
  registerInspect(program, ctx);
  registerExplain(program, ctx);
}

function registerBackfill(program: Command, ctx: () => OpsContext): void {
  program
    .command('backfill')
    .description('rebuild the online store from snapshots of the source')
    .option(
      '--rate <rows/s>',
      'rate limit on source rows read per second (0: none; as BACKFILL_ROWS_PER_S, at most 10,000,000)',
      intBetween(0, 10_000_000)('--rate'),
    )
    .option(
      '--chunk <rows>',
      'rows per chunk (100 to 100,000, as BACKFILL_CHUNK_ROWS)',
      intBetween(100, 100_000)('--chunk'),
    )
    .option('--no-wait', 'start it and return')
    .action(async (o) => {
      const c = ctx();
      const rowsPerSecond: number = o.rate ?? c.config.BACKFILL_ROWS_PER_S;
      const chunkRows: number = o.chunk ?? c.config.BACKFILL_CHUNK_ROWS;
      const r = await runOperatorWorkflow<typeof backfillWorkflow, BackfillProgress>(c, {
        what: 'backfill',
        workflow: backfillWorkflow,
        workflowId: `backfill-${stamp()}`,
        args: [{ reason: 'ops backfill', rowsPerSecond, chunkRows }],
        summary: `Backfill of the whole store from a source snapshot, ${rowsPerSecond ? `${rowsPerSecond} rows/s` : 'no rate limit'}, chunks of ${chunkRows}`,
        wait: o.wait,
        progress: (p) => ({ value: p.rows, total: p.estimatedRows, label: `backfill ${p.table}` }),
      });
      if (r) console.log(`backfill done: ${r.rows} source rows, ${r.counters} load counters`);
    });
}

function registerVerify(program: Command, ctx: () => OpsContext): void {
  program
    .command('verify')
    .description(
      'reconcile the online store against the source; exit code 1 when anything differs, 3 when differences were left unjudged because the drain had not caught up',
    )
    .option('--sample <n>', 'check n random SKUs instead of all', positiveInt('--sample'))
    .option(
      '--settle-seconds <s>',
      'seconds verify waits for the drain to apply what it saw in the sources before judging what differs (1-90)',
      intBetween(1, 90)('--settle-seconds'),
      30,
    )
    .option('--json', 'machine-readable output')
    .action(async (o) => {
      const r = (await runOperatorWorkflow(ctx(), {
        what: 'verify',
        workflow: verifyWorkflow,
        workflowId: `verify-${stamp()}`,
        args: [{ sample: o.sample, settleMs: o.settleSeconds * 1000 }],
        summary: o.sample
          ? `Verify of ${o.sample} random SKUs, every FC, region and load`
          : 'Verify of every SKU, FC, region and load',
        wait: true,
        json: !!o.json,
      })) as VerifyReport;
      printJsonOr(o.json, r, () => printVerifyReport(r));
      if (r.mismatches.length) process.exitCode = 1;
      else if (r.unjudged?.length) process.exitCode = 3; // 2 is a usage error
    });
}

/** The verify report for a person: the counts, then the first 50 mismatches. */
function printVerifyReport(r: VerifyReport): void {
  console.log(
    `${r.mode}: ${r.checkedSkus} SKUs and ${r.checkedBadges} (SKU, region) badges checked; ${r.mismatches.length} mismatch(es)${r.settled ? ` (${r.settled} more were changes in flight)` : ''}`,
  );
  for (const m of r.mismatches.slice(0, 50))
    console.log(
      `  ${m.sku ?? '-'}  ${m.feature} ${m.key}: source=${m.source ?? '(none)'} store=${m.store ?? '(none)'}`,
    );
  if (r.mismatches.length > 50) console.log(`  … and ${r.mismatches.length - 50} more (--json for all)`);
  // (`?.`: a report from a worker older than this field has none)
  if (r.unjudged?.length)
    console.log(
      `${r.unjudged.length} difference(s) left unjudged: the drain had not applied the sources' changes within the settle time, so lag and mismatch cannot be told apart. Run verify again once the pipeline has caught up (npm run ops -- status).`,
    );
}

function registerExport(program: Command, ctx: () => OpsContext): void {
  program
    .command('export')
    .description('export one UTC day as Parquet (changes, feature history, end-of-day badges) from the landing area')
    .requiredOption('--date <YYYY-MM-DD>', 'the UTC day', dateArg)
    .option(
      '--allow-empty',
      'write a partition even when nothing landed for the day (the previous end state carried over)',
    )
    .action(async (o) => {
      const c = ctx();
      const r = (await runOperatorWorkflow(c, {
        what: 'export',
        workflow: exportWorkflow,
        workflowId: `export-${o.date}-${stamp()}`,
        args: [{ date: o.date, allowEmpty: o.allowEmpty === true }],
        summary: `Parquet export of UTC day ${o.date}`,
        taskQueue: batchTaskQueue(c.config),
        wait: true,
      }).catch((err) => {
        // the activity's own message (nothing landed: what to check), not "workflow execution failed"
        if (!(err instanceof WorkflowFailedError)) throw err;
        let e = err as { message?: string; cause?: unknown };
        while (e.cause) e = e.cause as typeof e;
        throw new Error(e.message ?? String(err));
      }))!;
      console.log(`exported ${o.date}: ${r.changes} changes, ${r.badges} end-of-day badges -> ${r.dir}`);
    });
}

function registerInspect(program: Command, ctx: () => OpsContext): void {
  program
    .command('inspect')
    .description(
      'one SKU: what the store holds (decoded, with versions and TTL), what the source says, its badge per region',
    )
    .argument('<sku>', 'SKU id')
    .option('--region <region>', 'only this region')
    .option('--json', 'machine-readable output')
    .action(async (sku, o) => {
      const r = await inspectSku(ctx(), sku, o.region);
      printJsonOr(o.json, r, () => printInspection(r));
    });
}

function registerExplain(program: Command, ctx: () => OpsContext): void {
  program
    .command('explain')
    .description(
      "one SKU's badge in one region and why: the rule that decided, each FC in rank order (available, capacity, today's load), store vs source side by side, freshness",
    )
    .argument('<sku>', 'SKU id')
    .requiredOption('--region <region>', 'the region')
    .option('--json', 'machine-readable output')
    .action(async (sku, o) => {
      const e = await explainSku(ctx(), sku, o.region);
      printJsonOr(o.json, e, () => printExplanation(e));
    });
}
