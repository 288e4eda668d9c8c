/**
 * Starting an operator's workflow: a meaningful id, the Web UI's summary and details (what it does,
 * who asked, from which command), a link to it, and (unless --no-wait) its result, with a progress
 * bar on a terminal.
 */
import os from 'node:os';
import type { Workflow, WorkflowStartOptions } from '@temporalio/client';
import { startTags } from '../../workflows/search-attributes';
import { ensureSearchAttributes } from '../lib/search-attributes';
import { followProgress } from './progress';
import type { OpsContext } from './context';

export interface OperatorWorkflow<W extends Workflow, P> {
  /** How the command names it in its output ("replay", "backfill", …). */
  what: string;
  workflow: W;
  workflowId: string;
  args: Parameters<W>;
  /** The Web UI's one-line summary. */
  summary: string;
  /** Defaults to the pipeline's task queue. */
  taskQueue?: string;
  wait: boolean;
  progress?: (p: P) => { value: number; total: number; label: string };
  /** `--json`: stdout holds the result alone (the "started" line is not printed). */
  json?: boolean;
}

/** Starts it; returns its result when waiting (undefined otherwise). */
export async function runOperatorWorkflow<W extends Workflow, P = never>(
  ctx: OpsContext,
  o: OperatorWorkflow<W, P>,
): Promise<Awaited<ReturnType<W>> | undefined> {
  const temporal = await ctx.temporal();
  if (ctx.config.TEMPORAL_SEARCH_ATTRIBUTES) await ensureSearchAttributes(temporal, ctx.config.TEMPORAL_NAMESPACE);
  const handle = await temporal.workflow.start(o.workflow, {
    taskQueue: o.taskQueue ?? ctx.config.TEMPORAL_TASK_QUEUE,
    workflowId: o.workflowId,
    args: o.args,
    ...operatorMetadata(o.summary),
    // its kind as a search attribute (workflows/search-attributes.ts), unless they are turned off
    ...startTags(o.workflow.name, ctx.config.TEMPORAL_SEARCH_ATTRIBUTES),
  } as unknown as WorkflowStartOptions<W>);
  if (!o.json)
    console.log(
      `${o.what} started: workflow ${handle.workflowId} (Web UI: http://localhost:${ctx.config.TEMPORAL_UI_PORT}/namespaces/${ctx.config.TEMPORAL_NAMESPACE}/workflows/${handle.workflowId})`,
    );
  if (!o.wait) return undefined;
  const result = o.progress && process.stdout.isTTY ? followProgress<P>(handle, o.progress) : handle.result();
  return (await result) as Awaited<ReturnType<W>>;
}

/**
 * What the Temporal Web UI shows on an operator-started workflow without a query (user metadata):
 * what it does, who asked, from which command. The command line holds no secrets (they come from
 * the environment only).
 */
function operatorMetadata(summary: string): { staticSummary: string; staticDetails: string } {
  const who = operatorName();
  return {
    staticSummary: summary,
    staticDetails: `Started by ${who} with \`npm run ops -- ${process.argv.slice(2).join(' ')}\` at ${new Date().toISOString()}.`,
  };
}

/** Who runs this command, as the Web UI and audit columns record it: user@host. */
export function operatorName(): string {
  return `${os.userInfo().username}@${os.hostname()}`;
}
