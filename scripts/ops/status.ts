/** `ops status`: drain state, lag, last run, dead letters, schedules, running operations. */
import { names } from '../../config';
import { leaseHolder } from '../../outbox';
import { openTransactions, OpenTransactions, pendingRows, readCursor } from '../../outbox';
import { readWatermark, storeComplete } from '../../store/watermark';
import { OpsContext } from './context';

export interface Status {
  drain: {
    schedule: 'active' | 'paused' | 'missing';
    note?: string;
    lastRun?: string;
    lastRunAt?: string;
    running: string[];
    leaseHolder: string | null;
  };
  position: string;
  openTransactions: OpenTransactions;
  lag: {
    rows: number;
    rowsCapped: boolean;
    oldestUnappliedAgeS: number | null;
    seconds: number | null;
    stale: boolean;
  };
  store: { complete: boolean; caughtUpAt: string | null };
  deadLetters: number;
  operations: string[];
}

export async function readStatus(ctx: OpsContext): Promise<Status> {
  const pool = ctx.pool();
  const redis = await ctx.redis();
  const temporal = await ctx.temporal();
  const cursor = await readCursor(pool, names.drainConsumer);
  const cap = 10_000_000;
  const pending = await pendingRows(pool, names.drainConsumer, cap);
  const lagRows = { n: pending.rows, age: pending.oldestAgeMs === null ? null : pending.oldestAgeMs / 1000 };
  const w = await readWatermark(redis, ctx.keys);
  const lagMs = w.caughtUpAt === null ? null : Date.now() - w.caughtUpAt;
  const dead = (await pool.query(`select count(*)::int as n from pipeline.dead_letters where retried_at is null`))
    .rows[0].n;

  let schedule: Status['drain']['schedule'] = 'missing';
  let note: string | undefined;
  let lastRun: string | undefined;
  let lastRunAt: string | undefined;
  try {
    const d = await temporal.schedule.getHandle(names.drainScheduleId).describe();
    schedule = d.state.paused ? 'paused' : 'active';
    note = d.state.note;
    const last = d.info.recentActions[d.info.recentActions.length - 1];
    if (last) {
      lastRun = last.action.workflow.workflowId;
      lastRunAt = last.takenAt.toISOString();
    }
  } catch {
    // no schedule yet (npm start creates it)
  }
  const running: string[] = [];
  for await (const wf of temporal.workflow.list({
    query: `WorkflowType = 'drainWorkflow' AND ExecutionStatus = 'Running'`,
  }))
    running.push(wf.workflowId);
  const operations: string[] = [];
  for await (const wf of temporal.workflow.list({
    query: `WorkflowType IN ('backfillWorkflow', 'replayWorkflow', 'verifyWorkflow', 'retryDeadLettersWorkflow', 'compactionWorkflow', 'skuRebuildWorkflow') AND ExecutionStatus = 'Running'`,
  }))
    operations.push(`${wf.type} ${wf.workflowId}`);

  return {
    drain: { schedule, note, lastRun, lastRunAt, running, leaseHolder: await leaseHolder(pool, names.drainLease) },
    position: `batch ${cursor.batch}, applied through snapshot ${cursor.from}${cursor.to ? ` (in progress towards ${cursor.to}, at ${cursor.position.txid}:${cursor.position.id})` : ''}`,
    openTransactions: await openTransactions(pool),
    lag: {
      rows: lagRows.n,
      rowsCapped: lagRows.n >= cap,
      oldestUnappliedAgeS: lagRows.age === null ? null : Math.round(lagRows.age * 10) / 10,
      seconds: lagMs === null ? null : Math.round(lagMs / 100) / 10,
      stale: lagMs === null || lagMs > ctx.config.STALE_AFTER_MS,
    },
    store: {
      complete: await storeComplete(redis, ctx.keys),
      caughtUpAt: w.caughtUpAt === null ? null : new Date(w.caughtUpAt).toISOString(),
    },
    deadLetters: dead,
    operations,
  };
}

export function printStatus(s: Status): void {
  const line = (k: string, v: string) => console.log(`${k.padEnd(16)} ${v}`);
  line('drain schedule', `${s.drain.schedule}${s.drain.note ? ` (${s.drain.note})` : ''}`);
  line('drain running', s.drain.running.length ? s.drain.running.join(', ') : 'no run right now');
  line('last run', s.drain.lastRun ? `${s.drain.lastRun} at ${s.drain.lastRunAt}` : '-');
  line('lease', s.drain.leaseHolder ?? 'free');
  line('position', s.position);
  const ot = s.openTransactions;
  line(
    'open xacts',
    ot.oldest
      ? `${ot.count} open write transaction(s); oldest ${Math.round(ot.oldest.ageMs / 1000)} s (pid ${ot.oldest.pid}, ${ot.oldest.application || 'no application name'}, ${ot.oldest.state}): delays compaction and vacuum, not freshness`
      : 'none',
  );
  line(
    'lag',
    `${s.lag.rows}${s.lag.rowsCapped ? '+' : ''} rows unapplied${s.lag.oldestUnappliedAgeS !== null ? `, oldest ${s.lag.oldestUnappliedAgeS} s old` : ''}; store caught up ${s.lag.seconds === null ? 'never' : `${s.lag.seconds} s ago`}`,
  );
  line('freshness', s.lag.stale ? 'STALE (reads say stale: true)' : 'fresh');
  line(
    'store',
    s.store.complete
      ? 'complete (epoch present)'
      : 'INCOMPLETE: no epoch (data lost or never backfilled); a backfill restores it',
  );
  line('dead letters', String(s.deadLetters));
  line('operations', s.operations.length ? s.operations.join('; ') : 'none running');
}
