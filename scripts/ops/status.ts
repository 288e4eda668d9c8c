/** `ops status`: drain state, lag, last run, dead letters, schedules, running operations. */
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import type pg from 'pg';
import {
  holdsInForce,
  earliestSnapshot,
  drainPendingRows,
  drainScheduleIdOf,
  leaseHolder,
  openTransactions,
  OpenTransactions,
  shardCursors,
  type ConsumerCursor,
  type DrainShard,
} from '../../outbox';
import { readWatermark, storeComplete } from '../../store/watermark';
import { OpsContext } from './context';
import { WAITING_DEAD_LETTER } from '../../activities/dead-letters/waiting';
import { readCaptureStatus, type CaptureSourceStatus, type SourcePools } from '../../capture/capture-status';
import { captureSchedulesNow } from '../lib/schedules';

export interface Status {
  drain: {
    schedule: 'active' | 'paused' | 'missing';
    note?: string;
    lastRun?: string;
    lastRunAt?: string;
    running: string[];
    leaseHolder: string | null;
    /** DRAIN_SHARDS in force (pipeline.drain_layout), and the snapshot they are frozen at while it changes. */
    shards: number;
    frozen: string | null;
    /** Per shard: its schedule, lease and cursor. */
    perShard: {
      shard: number;
      schedule: 'active' | 'paused' | 'missing';
      leaseHolder: string | null;
      position: string;
    }[];
  };
  position: string;
  /**
   * The snapshot every shard has applied, in the form `ops replay --from` takes: noted before a
   * fix is deployed, it replays every change applied since.
   */
  replayFrom: string;
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
  /** Replays' holds on the outbox in force (outbox/holds.ts): compaction keeps rows from each txid on. */
  outboxHolds: { holder: string; txid: string; expiresAt: string }[];
  /**
   * Each source captured from the WAL (its capture schedule exists, or this shell's configuration
   * says CAPTURE_MODE=logical): its schedule, slot and coverage. Empty with the trigger capture.
   */
  capture: (CaptureSourceStatus & { schedule: ScheduleState })[];
}

/** The visibility query for the drain runs going now (any shard). */
export const RUNNING_DRAINS_QUERY = `WorkflowType = 'drainWorkflow' AND ExecutionStatus = 'Running'`;

export async function readStatus(ctx: OpsContext): Promise<Status> {
  const pool = ctx.pool();
  const redis = await ctx.redis();
  const temporal = await ctx.temporal();
  const { layout, shards } = await shardCursors(pool);
  const cap = 10_000_000;
  const pending = await drainPendingRows(pool, ctx.keys, cap);
  const w = await readWatermark(redis, ctx.keys);
  const lagMs = w.lagMs;
  const dead = (await pool.query(`select count(*)::int as n from pipeline.dead_letters where ${WAITING_DEAD_LETTER}`))
    .rows[0].n;
  const { perShard, note, lastRun, lastRunAt } = await readShardSchedules(temporal, pool, shards);
  const running = await listRunning(temporal, RUNNING_DRAINS_QUERY, (wf) => wf.workflowId);
  const operations = await listRunning(
    temporal,
    `WorkflowType IN ('backfillWorkflow', 'replayWorkflow', 'verifyWorkflow', 'retryDeadLettersWorkflow', 'discardDeadLettersWorkflow', 'compactionWorkflow', 'skuRebuildWorkflow') AND ExecutionStatus = 'Running'`,
    (wf) => `${wf.type} ${wf.workflowId}`,
  );

  return {
    drain: {
      schedule: worstSchedule(perShard),
      note,
      lastRun,
      lastRunAt,
      running,
      leaseHolder: perShard[0].leaseHolder,
      shards: layout.shards,
      frozen: layout.frozen?.snap ?? null,
      perShard,
    },
    position:
      perShard.length === 1 ? perShard[0].position : perShard.map((s) => `shard ${s.shard}: ${s.position}`).join('; '),
    // from the cursors the position lines were read from: the same snapshot in both
    replayFrom: earliestSnapshot(shards.map((s) => s.cursor.from)),
    openTransactions: await openTransactions(pool),
    lag: lagOf(pending, lagMs, cap, ctx.config.STALE_AFTER_MS),
    store: {
      complete: await storeComplete(redis, ctx.keys),
      caughtUpAt: w.caughtUpAt === null ? null : new Date(w.caughtUpAt).toISOString(),
    },
    deadLetters: dead,
    operations,
    outboxHolds: (await holdsInForce(pool)).map((h) => ({ ...h, expiresAt: h.expiresAt.toISOString() })),
    capture: await captureStatus(ctx, temporal),
  };
}

/**
 * Each source's capture, for every capture schedule there is and every source this configuration
 * captures from the WAL (an operator's shell may lack CAPTURE_MODE=logical while the workers have
 * it), through pools closed again right after.
 */
async function captureStatus(ctx: OpsContext, temporal: Client): Promise<Status['capture']> {
  const schedules = await captureSchedulesNow(temporal, ctx.config);
  const pools: SourcePools = new Map();
  try {
    const sources = await readCaptureStatus(
      ctx.config,
      ctx.pool(),
      pools,
      schedules.map((s) => s.source),
    );
    return sources.map((c, i) => ({ ...c, schedule: schedules[i].state }));
  } finally {
    await Promise.all([...pools.values()].map((p) => p.end()));
  }
}

type ScheduleState = Status['drain']['schedule'];

/**
 * Each shard's schedule state, lease holder and position; the first schedule note found, and the
 * most recent run of any shard's schedule.
 */
async function readShardSchedules(
  temporal: Client,
  pool: pg.Pool,
  shards: { shard: DrainShard; cursor: ConsumerCursor }[],
): Promise<Pick<Status['drain'], 'perShard' | 'note' | 'lastRun' | 'lastRunAt'>> {
  let note: string | undefined;
  let lastRun: string | undefined;
  let lastRunAt: string | undefined;
  const perShard: Status['drain']['perShard'] = [];
  for (const { shard, cursor } of shards) {
    let state: ScheduleState = 'missing';
    try {
      const d = await temporal.schedule.getHandle(drainScheduleIdOf(shard)).describe();
      state = d.state.paused ? 'paused' : 'active';
      note ??= d.state.note;
      const last = d.info.recentActions[d.info.recentActions.length - 1];
      if (last && (!lastRunAt || last.takenAt.toISOString() > lastRunAt)) {
        lastRun = last.action.workflow.workflowId;
        lastRunAt = last.takenAt.toISOString();
      }
    } catch {
      // no schedule yet (npm start creates it)
    }
    perShard.push({
      shard: shard.index,
      schedule: state,
      leaseHolder: await leaseHolder(pool, shard.lease),
      position: describePosition(cursor),
    });
  }
  return { perShard, note, lastRun, lastRunAt };
}

/** The worst of the shards' schedules. */
const worstSchedule = (perShard: { schedule: ScheduleState }[]): ScheduleState =>
  perShard.some((s) => s.schedule === 'missing')
    ? 'missing'
    : perShard.some((s) => s.schedule === 'paused')
      ? 'paused'
      : 'active';

/** The running workflows the visibility query finds, each as `describe` puts it. */
async function listRunning(
  temporal: Client,
  query: string,
  describe: (wf: WorkflowExecutionInfo) => string,
): Promise<string[]> {
  const out: string[] = [];
  for await (const wf of temporal.workflow.list({ query })) out.push(describe(wf));
  return out;
}

/** Lag in rows (capped at `cap`) and in seconds since the store last caught up; stale past STALE_AFTER_MS. */
function lagOf(
  pending: { rows: number; oldestAgeMs: number | null },
  lagMs: number | null,
  cap: number,
  staleAfterMs: number,
): Status['lag'] {
  const lagRows = { n: pending.rows, age: pending.oldestAgeMs === null ? null : pending.oldestAgeMs / 1000 };
  return {
    rows: lagRows.n,
    rowsCapped: lagRows.n >= cap,
    oldestUnappliedAgeS: lagRows.age === null ? null : Math.round(lagRows.age * 10) / 10,
    seconds: lagMs === null ? null : Math.round(lagMs / 100) / 10,
    stale: lagMs === null || lagMs > staleAfterMs,
  };
}

const describePosition = (cursor: ConsumerCursor) =>
  `batch ${cursor.batch}, applied through snapshot ${cursor.from}${cursor.to ? ` (in progress towards ${cursor.to}, at ${cursor.position.txid}:${cursor.position.id})` : ''}`;

export function printStatus(s: Status): void {
  const line = (k: string, v: string) => console.log(`${k.padEnd(16)} ${v}`);
  line('drain schedule', `${s.drain.schedule}${s.drain.note ? ` (${s.drain.note})` : ''}`);
  line('drain running', s.drain.running.length ? s.drain.running.join(', ') : 'no run right now');
  line('last run', s.drain.lastRun ? `${s.drain.lastRun} at ${s.drain.lastRunAt}` : '-');
  if (s.drain.shards === 1) {
    line('lease', s.drain.leaseHolder ?? 'free');
    line('position', s.position);
    if (s.drain.frozen) line('drain shards', `1, FROZEN at ${s.drain.frozen}: DRAIN_SHARDS is changing`);
  } else {
    line(
      'drain shards',
      `${s.drain.shards}${s.drain.frozen ? ` (FROZEN at ${s.drain.frozen}: DRAIN_SHARDS is changing)` : ''}`,
    );
    for (const p of s.drain.perShard)
      line(`  shard ${p.shard}`, `schedule ${p.schedule}, lease ${p.leaseHolder ?? 'free'}, ${p.position}`);
  }
  line(
    'replay point',
    `${s.replayFrom} (npm run ops -- replay --from ${s.replayFrom} re-applies every change after it)`,
  );
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
  for (const c of s.capture) line(`capture ${c.source}`, `schedule ${c.schedule}; ${describeCapture(c)}`);
  line('dead letters', String(s.deadLetters));
  line('operations', s.operations.length ? s.operations.join('; ') : 'none running');
  line(
    'outbox holds',
    s.outboxHolds.length
      ? s.outboxHolds
          .map((h) => `${h.holder} keeps rows from txid ${h.txid} (lapses at ${h.expiresAt} unless it moves on)`)
          .join('; ')
      : 'none',
  );
}

/** One source's capture for a person: the slot, the WAL it keeps, how far behind the outbox is. */
export function describeCapture(c: CaptureSourceStatus): string {
  const slot = c.slotState
    ? c.slotState.exists
      ? `slot ${c.slot} ${c.slotState.active ? 'streaming' : 'idle'}, keeps ${(c.slotState.retainedBytes / 1048576).toFixed(1)} MiB of WAL${c.slotState.walStatus && c.slotState.walStatus !== 'reserved' ? ` (${c.slotState.walStatus})` : ''}${c.slotState.invalidationReason ? ` INVALIDATED (${c.slotState.invalidationReason}: capture drops and re-creates it)` : ''}`
      : `slot ${c.slot} MISSING (capture creates it; changes meanwhile are lost)`
    : c.unread
      ? `slot ${c.slot} not read: ${c.unread}`
      : `source unreachable: ${c.error}`;
  const covered =
    c.coveredAtMs === null
      ? 'nothing covered yet'
      : `covered until ${Math.round((Date.now() - c.coveredAtMs) / 100) / 10} s ago`;
  const lost =
    c.lostAtMs === null
      ? ''
      : `; REFILL PENDING since ${new Date(c.lostAtMs).toISOString()} (its slot was lost, or it joined a pipeline that had captured other sources): reads stay stale until the store is refilled`;
  return `${slot}; at LSN ${c.lsn ?? '-'}, ${covered}${lost}`;
}
