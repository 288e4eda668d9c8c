/**
 * Stopping the drain and capture chains and confirming they ended (`ops pause`; `npm start`
 * handing capture back to the triggers).
 *
 * The visibility list alone is eventually consistent: it can miss a run of the last moment (a
 * watchdog fire landing as the schedule is paused, a chain mid continue-as-new) and still show one
 * that has just completed. So a chain is looked for three ways: that list, the lease table (each
 * chain's lease in pipeline.leases is owned by its workflow id: workflows/drain.ts, capture.ts),
 * and the runs its paused schedules started. Each is described (strongly consistent) before it is
 * signalled `stop` by workflow id, so the chain's current run gets it; one that has ended meanwhile
 * is no error. Then each is described until it is closed (a chain that went on in a new run is
 * signalled again), and the three are looked at again until a look finds nothing new.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type Client, ScheduleNotFoundError, WorkflowNotFoundError } from '@temporalio/client';
import type pg from 'pg';
import { stopCaptureSignal, stopDrainSignal } from '../../workflows';

export type ChainType = 'drainWorkflow' | 'captureWorkflow';
export const CHAIN_TYPES: readonly ChainType[] = ['drainWorkflow', 'captureWorkflow'];

export interface StopChainsOptions {
  types: readonly ChainType[];
  /** The pipeline database: its leases name the chains holding them. */
  pool?: pg.Pool;
  /** Schedules, paused already, whose running and latest runs are looked at too. */
  scheduleIds?: string[];
  /**
   * The pipeline's task queues: the visibility list is limited to these and those the schedules
   * start runs on (another pipeline's chains in the namespace are not this one's to stop). Absent:
   * every chain listed.
   */
  taskQueues?: string[];
  /** How long to wait, in all, for the chains to end (default 30 s). */
  timeoutMs?: number;
}

export interface StopReport {
  /** Workflow ids of the chains signalled that have ended. */
  stopped: string[];
  /** Workflow ids of the chains signalled that were still running when the wait ran out. */
  stillRunning: string[];
}

/** A chain signalled: its type, the run that got the signal last, and whether it has ended. */
interface Signalled {
  type: ChainType;
  runId: string;
  closed: boolean;
}

const POLL_MS = 200;
/** A look after this long since the start finds runs a fire started just before the pause (they take their lease, show in the list). */
const SETTLE_MS = 1_500;

export async function stopChains(temporal: Client, opts: StopChainsOptions): Promise<StopReport> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  const settled = Date.now() + SETTLE_MS;
  const seen = new Set<string>();
  const signalled = new Map<string, Signalled>();
  for (;;) {
    const fresh = (await findChains(temporal, opts)).filter((id) => !seen.has(id));
    for (const id of fresh) {
      seen.add(id);
      const run = await runningChain(temporal, id, opts.types);
      if (run && (await signalStop(temporal, id, run.type))) signalled.set(id, { ...run, closed: false });
    }
    await untilClosed(temporal, signalled, deadline);
    if (Date.now() >= deadline || (fresh.length === 0 && Date.now() >= settled)) break;
    if (fresh.length === 0) await sleep(POLL_MS);
  }
  const ids = (closed: boolean) => [...signalled].filter(([, s]) => s.closed === closed).map(([id]) => id);
  return { stopped: ids(true).sort(), stillRunning: ids(false).sort() };
}

/** Workflow ids that may be running chains: started by the schedules, listed as running, or owning a lease. */
async function findChains(temporal: Client, opts: StopChainsOptions): Promise<string[]> {
  const ids = new Set<string>();
  const queues = new Set(opts.taskQueues ?? []);
  for (const scheduleId of opts.scheduleIds ?? []) {
    const d = await temporal.schedule
      .getHandle(scheduleId)
      .describe()
      .catch((err) => {
        if (err instanceof ScheduleNotFoundError) return null;
        throw err;
      });
    if (!d) continue;
    queues.add(d.action.taskQueue);
    const latest = d.info.recentActions.at(-1)?.action;
    for (const a of [...d.info.runningActions, ...(latest ? [latest] : [])]) ids.add(a.workflow.workflowId);
  }
  for await (const wf of temporal.workflow.list({ query: runningQuery(opts.types, opts.taskQueues && [...queues]) }))
    ids.add(wf.workflowId);
  if (opts.pool) {
    const leases = await opts.pool.query<{ owner: string }>(`select owner from pipeline.leases`);
    for (const { owner } of leases.rows) ids.add(owner);
  }
  return [...ids];
}

/** The visibility query for running chains of `types`, on `queues` when given. */
function runningQuery(types: readonly ChainType[], queues: string[] | undefined): string {
  const list = (values: readonly string[]) => values.map((v) => `'${v}'`).join(', ');
  return `WorkflowType IN (${list(types)}) AND ExecutionStatus = 'Running'${queues ? ` AND TaskQueue IN (${list(queues)})` : ''}`;
}

/** The chain's current run when it is running and of one of `types` (a lease owner may be no workflow at all). */
async function runningChain(
  temporal: Client,
  workflowId: string,
  types: readonly ChainType[],
): Promise<{ type: ChainType; runId: string } | null> {
  try {
    const d = await temporal.workflow.getHandle(workflowId).describe();
    const type = types.find((t) => t === d.type);
    return type && d.status.name === 'RUNNING' ? { type, runId: d.runId } : null;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return null;
    throw err;
  }
}

/** Signals the chain's current run to stop; false when it has ended meanwhile. */
async function signalStop(temporal: Client, workflowId: string, type: ChainType): Promise<boolean> {
  try {
    await temporal.workflow
      .getHandle(workflowId)
      .signal(type === 'drainWorkflow' ? stopDrainSignal : stopCaptureSignal);
    return true;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}

/** Describes each signalled chain until it has ended or the deadline passes. */
async function untilClosed(temporal: Client, signalled: Map<string, Signalled>, deadline: number): Promise<void> {
  for (;;) {
    let open = 0;
    for (const [id, s] of signalled) {
      if (s.closed) continue;
      const now = await runningChain(temporal, id, [s.type]);
      if (!now) {
        s.closed = true;
        continue;
      }
      open++;
      // The chain went on in a run that did not get the signal (a worker of older code continued
      // it as new): tell that run too.
      if (now.runId !== s.runId && (await signalStop(temporal, id, s.type))) s.runId = now.runId;
    }
    if (open === 0 || Date.now() >= deadline) return;
    await sleep(POLL_MS);
  }
}
