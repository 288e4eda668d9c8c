/**
 * The backfill under CAPTURE_MODE=logical (docs/capture.md): every row of every table, and every
 * FC's load of each day the store keeps, re-read from its source between watermarks in that
 * source's WAL, written into the outbox by the source's capture, applied by the drain like any
 * other change (rows as refreshes, loads as load sets at their place in the stream). Nothing is
 * written into a source, and an older image never wins over a concurrent change.
 *
 * The store is marked complete (its epoch) only once the drain has applied everything the chunks
 * wrote. A source whose slot was lost is counted as covered again only by a backfill that began
 * after the loss.
 */
import { Context } from '@temporalio/activity';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { transactionsBeforeRunning } from '../../capture/slot';
import { captureSources, type CaptureSource } from '../../capture/sources';
import { readThroughWatermarks } from '../../capture/watermark-read';
import type { Config } from '../../config';
import { parseSnapshot, snapshotCovers } from '../../db/pg-snapshot';
import { dayBefore, loadWindowStart } from '../../features/definitions';
import { drainAppliedSnapshot } from '../../outbox';
import { storeFeatures } from '../../reconcile/store-features';
import type { StoreKeys } from '../../store/keys';
import type { StoreRedis } from '../../store/redis-client';
import { BACKFILL_TABLES, type BackfillTable, type ChunkResult, finishBackfill, markBackfillStart } from './backfill';
import { estimateTableRows } from './row-estimate';
import { activityChunkWait } from '../chunk-wait';
import { heartbeatWith } from '../heartbeat-details';
import { logger } from '../../log/logger';
import { redactText } from '../../config/redact';

/** Waiting for the capture to write a chunk: a backlog in the slot comes first. */
const CHUNK_TIMEOUT_MS = 10 * 60_000;

/**
 * The longest a chunk activity waits for the capture to write its chunk, whether the capture moves
 * or not: inside the activity's 5 minutes (workflows/activity-options.ts, backfillActivity), so an
 * attempt ends by itself instead of waiting on in its slot after Temporal has timed it out.
 */
const CHUNK_WAIT_MS = 4 * 60_000;

/**
 * The load counters ("fc|yyyymmdd", from `fromDay` on) the store holds: those of every partition's
 * copy (one copy may hold a counter the others do not, or a wrong one), each read as itself
 * (without `partition`, copies that differ come back as "<key>@p<n>", which no order row carries).
 */
async function heldLoadKeys(redis: StoreRedis, keys: StoreKeys, fromDay: string): Promise<string[]> {
  const held = new Set<string>();
  for (const part of keys.partitions)
    for (const k of (await storeFeatures(redis, keys, { skus: false, partition: part.index })).load.keys())
      if (!dayBefore(k.slice(k.lastIndexOf('|') + 1), fromDay)) held.add(k);
  return [...held];
}

export function createWatermarkBackfill(deps: {
  pool: pg.Pool;
  redis: StoreRedis;
  keys: StoreKeys;
  config: Config;
  stopping?: AbortSignal;
}) {
  const sources = captureSources(deps.config);
  const sourceOf = (tbl: string): CaptureSource => sources.find((s) => (s.tables as string[]).includes(tbl))!;
  // A chunk waits for the capture to write it (minutes behind a backlog): a cancellation or the
  // worker's shutdown ends the wait, so a stopping worker is not held by it.
  const read = (tbl: string) => ({
    source: sourceOf(tbl),
    pipeline: deps.pool,
    timeoutMs: CHUNK_TIMEOUT_MS,
    waitMs: CHUNK_WAIT_MS,
    heartbeat: activityChunkWait(() => ({ waitingForCapture: tbl })).heartbeat,
    signal: deps.stopping
      ? AbortSignal.any([Context.current().cancellationSignal, deps.stopping])
      : Context.current().cancellationSignal,
  });

  return {
    async plan(marker?: string): Promise<Record<BackfillTable, number>> {
      await refuseWhileGapTransactionsRun(deps.pool, sources);
      if (marker) await markBackfillStart(deps.redis, deps.keys, marker);
      // a source lost before now is refilled by this backfill
      await deps.pool.query(`update pipeline.capture_progress set refill_from = now() where lost_at is not null`);
      const plan = {} as Record<BackfillTable, number>;
      for (const tbl of BACKFILL_TABLES) plan[tbl] = await estimateRows(sourceOf(tbl), tbl);
      return plan;
    },

    async chunk(input: { table: BackfillTable; after: string[] | null; limit: number }): Promise<ChunkResult> {
      const w = await readThroughWatermarks(read(input.table), {
        tbl: input.table,
        range: { after: input.after, limit: input.limit },
      });
      const last = w.read < input.limit ? null : w.lastColumns;
      return { rows: w.read, last, filled: w.written };
    },

    async loads(): Promise<{ counters: number }> {
      const fromDay = loadWindowStart(Date.now(), deps.config.LOAD_TTL_S);
      // counters the store holds and the source has no orders for any more are set to 0
      const held = await heldLoadKeys(deps.redis, deps.keys, fromDay);
      const w = await readThroughWatermarks(read('orders'), { tbl: 'orders', loads: { fromDay, alsoZero: held } });
      return { counters: w.written };
    },

    async finish(input: { epoch: string; marker?: string; steps?: number }) {
      // Every chunk was written (committed) before this snapshot: once the drain has applied a
      // snapshot that covers it, the store holds them all.
      const now = (await deps.pool.query<{ s: string }>(`select pg_current_snapshot()::text as s`)).rows[0]!.s;
      for (let waited = 0; ; waited += 200) {
        const applied = await drainAppliedSnapshot(deps.pool);
        if (snapshotCovers(parseSnapshot(applied.snap), parseSnapshot(now))) break;
        if (waited > CHUNK_TIMEOUT_MS) throw new Error('the drain did not apply the backfill within 10 minutes');
        heartbeatWith({ waitingForDrain: waited });
        await sleep(200);
      }
      const r = await finishBackfill(deps.redis, deps.keys, input.epoch, input.marker, input.steps);
      // A source lost before this backfill began is refilled, once every partition is complete (one
      // rebuilt meanwhile, by a later loss's TRUNCATE say, waits for the next backfill).
      if (!r.incomplete.length)
        await deps.pool.query(
          `update pipeline.capture_progress set lost_at = null, refill_from = null, gap_xmax = null
            where lost_at is not null and refill_from is not null and lost_at <= refill_from`,
        );
      return r;
    },
  };
}

/**
 * A source marked lost for a change of its publication (its fingerprint: outbox/capture-progress.ts)
 * is refilled once every transaction in progress when the change was found has ended, on the
 * database the chunks read: one open across the change may hold changes the stream never sent,
 * and a chunk read before it commits would not see them either. Until then the plan fails (the
 * workflow retries it) and reads stay stale.
 */
async function refuseWhileGapTransactionsRun(pipeline: pg.Pool, sources: CaptureSource[]): Promise<void> {
  const gaps = await pipeline.query<{ source: string; xmax: string }>(
    `select source, gap_xmax as xmax from pipeline.capture_progress where lost_at is not null and gap_xmax is not null`,
  );
  for (const gap of gaps.rows) {
    const source = sources.find((s) => s.name === gap.source);
    if (!source) continue;
    // on the primary: transactions end there first (a chunk read on the replica then waits for its
    // replay), and a replica on another history (capture/replica.ts) would answer for that history
    const c = new pg.Client({ connectionString: source.url });
    c.on('error', () => {}); // a lost connection fails the query below
    await c.connect();
    try {
      if (await transactionsBeforeRunning(c, gap.xmax))
        throw new Error(
          `the refill of ${source.name} waits for the transactions that were open when its publication changed (xids below ${gap.xmax}) to end: they may hold changes the stream never sent; reads stay stale meanwhile`,
        );
    } finally {
      await c.end();
    }
  }
}

/**
 * A source table's row count for progress (row-estimate.ts), on the database the chunks read: its
 * replica, or the primary while the replica cannot be reached (as the chunks do: a replica down
 * must not stop the refill at its first step).
 */
async function estimateRows(source: CaptureSource, tbl: BackfillTable): Promise<number> {
  if (source.replicaUrl)
    try {
      return await estimateRowsAt(source.replicaUrl, tbl);
    } catch (err) {
      logger('backfill').warn(
        `the replica of ${source.name} cannot be reached (${redactText((err as Error).message)}): estimating shop.${tbl} on the primary`,
      );
    }
  return estimateRowsAt(source.url, tbl);
}

async function estimateRowsAt(url: string, tbl: BackfillTable): Promise<number> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  c.on('error', () => {}); // a lost connection fails the query below; unheard, it would end the worker
  try {
    await c.connect();
    return (await estimateTableRows(c, [tbl]))[tbl];
  } finally {
    await c.end().catch(() => {});
  }
}
