/**
 * VACUUM and ANALYZE of the pipeline's own tables, once per compaction run: the pipeline never
 * relies on autovacuum (this machine runs without it). The outbox is VACUUMed (with ANALYZE) when
 * rows were pruned and ANALYZEd alone otherwise: on a fresh install nothing is old enough to prune
 * for OUTBOX_RETENTION_H, and without statistics the drain's delta reads fall back to sequential
 * scans (scripts/bench/bench-env.ts). The small tables that every drain batch, lease renewal,
 * capture write, dead letter or re-read updates are VACUUMed (with ANALYZE) every run, or their dead
 * row versions pile up for good.
 *
 * On a connection of its own, not one of the pool's: a big outbox's VACUUM takes minutes, which
 * would keep a connection from the drain (db/pool.ts, connectBeside). Each statement may run
 * VACUUM_STATEMENT_TIMEOUT_MS; one that runs out is reported and the others still run. A statement
 * says nothing while it runs, so a timer heartbeats meanwhile.
 */
import type pg from 'pg';
import { connectBeside } from '../../db/pool';
import { cancelBackend } from '../../db/cancellable';
import { keptAlive } from '../kept-alive';

/** The pipeline's tables with churn, besides the outbox (sql/least-privilege.sql makes the worker their owner). */
export const CHURNING_TABLES = [
  'pipeline.consumer_offsets',
  'pipeline.drain_snapshots',
  'pipeline.leases',
  'pipeline.dead_letters',
  'pipeline.outbox_floor',
  'pipeline.capture_progress',
  'pipeline.capture_chunks',
] as const;

/** Generous (a VACUUM of a big outbox takes minutes) but within the activity's 30 minutes. */
export const VACUUM_STATEMENT_TIMEOUT_MS = 20 * 60_000;
/** Well inside the activity's heartbeat timeout (1 minute). */
export const VACUUM_KEEP_ALIVE_MS = 10_000;

export interface TableMaintenance {
  /** The statements run, e.g. `vacuum (analyze) pipeline.leases`, `analyze pipeline.outbox`. */
  done: string[];
  /** Statements that did not do their work: PostgreSQL's warning (a table the role does not own is skipped), or a timeout. */
  warnings: string[];
}

export interface MaintenanceOptions {
  /** Rows were pruned from the outbox: VACUUM it, not only ANALYZE it. */
  outboxPruned: boolean;
  /** Called with the statement running, every `keepAliveMs` while it runs. */
  heartbeat: (statement: string) => void;
  /** Cancels the statement in flight (the activity was cancelled, or its worker is shutting down). */
  signal?: AbortSignal;
  keepAliveMs?: number;
  statementTimeoutMs?: number;
}

export function maintenanceStatements(outboxPruned: boolean): string[] {
  return [
    ...CHURNING_TABLES.map((t) => `vacuum (analyze) ${t}`),
    outboxPruned ? 'vacuum (analyze) pipeline.outbox' : 'analyze pipeline.outbox',
  ];
}

export async function maintainPipelineTables(pool: pg.Pool, opts: MaintenanceOptions): Promise<TableMaintenance> {
  const client = await connectBeside(pool, 'fresh-badges-vacuum');
  const result: TableMaintenance = { done: [], warnings: [] };
  let warned: string[] = [];
  client.on('notice', (n) => {
    if (n.severity === 'WARNING') warned.push(n.message ?? 'warning');
  });
  let pid: number | null = null;
  // a cancel through a connection of its own: the pool's may all be busy (each waits up to 5 s for one)
  const cancel = () => {
    if (pid !== null) void cancelBackend(() => connectBeside(pool, 'fresh-badges-vacuum-cancel'), pid);
  };
  opts.signal?.addEventListener('abort', cancel);
  try {
    pid = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
    await client.query(`set statement_timeout = ${opts.statementTimeoutMs ?? VACUUM_STATEMENT_TIMEOUT_MS}`);
    for (const statement of maintenanceStatements(opts.outboxPruned)) {
      opts.signal?.throwIfAborted();
      warned = [];
      const timedOut = await keptAlive(
        runUntilTimeout(client, statement),
        () => opts.heartbeat(statement),
        opts.keepAliveMs ?? VACUUM_KEEP_ALIVE_MS,
      );
      // a cancellation comes back as the same error as a timeout: it is the activity's end, not a report
      opts.signal?.throwIfAborted();
      if (timedOut) warned.push(`ran longer than its statement_timeout, stopped`);
      if (warned.length) result.warnings.push(`${statement}: ${warned.join('; ')}`);
      else result.done.push(statement);
    }
    return result;
  } finally {
    opts.signal?.removeEventListener('abort', cancel);
    await client.end().catch(() => undefined);
  }
}

/** The statement; true when it was stopped (statement_timeout, or a cancel), any other error thrown. */
async function runUntilTimeout(client: pg.Client, statement: string): Promise<boolean> {
  try {
    await client.query(statement);
    return false;
  } catch (err) {
    if ((err as { code?: string }).code === '57014') return true; // query_canceled
    throw err;
  }
}
