/**
 * Section 2 of `npm run bench:e2e-logical`: catch-up of a slot backlog. Capture is paused (its
 * schedules paused, its runs stopped, the slots idle) while the backlog is written into both
 * sources; the server's own decoding of each slot's backlog is measured then (nothing consumed);
 * then capture resumes and is timed into the outbox (each source's coverage past the resume) and
 * end to end into Redis (the drain's applied snapshot covering everything committed before it).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { readSlot } from '../../capture/slot';
import { masterNodes } from '../../store/redis-client';
import { stopCaptureRuns } from '../lib/capture-mode';
import { withClient } from '../lib/source-databases';
import { cpuBetween, sampleCpu } from './cpu';
import { secondsUntilCaughtUp, secondsUntilFresh } from './drain-progress';
import type { CatchUp, LogicalRun, Options } from './e2e-logical-types';
import type { LogicalBench } from './logical-env';
import { outboxScanRowsPerS, slotDecodeChangesPerS } from './machine-limits';
import { int } from './stats';

const log = (s: string) => process.stderr.write(`${s}\n`);

/**
 * Until each slot's restart point is near its end again (under 64 MiB of WAL kept, 60 s at most).
 * The section before held a transaction open on each source, which holds a slot's restart point
 * where it began; a capture that starts again decodes from there. Without this the resumed capture
 * would decode that section's WAL again before reaching the backlog. A CHECKPOINT logs the running
 * transactions, which lets the restart point move once capture confirms past it.
 */
async function untilSlotsRestartNearEnd(lb: LogicalBench): Promise<Record<string, number>> {
  await lb.pool.query('checkpoint');
  const kept: Record<string, number> = {};
  for (let i = 0; i < 600; i++) {
    for (const s of lb.sources)
      kept[s.name] = await withClient(lb.ownerUrl[s.name]!, async (c) => (await readSlot(c, s.slot)).retainedBytes);
    if (Object.values(kept).every((b) => b < 64 * 1024 * 1024)) break;
    if (i % 100 === 99) await lb.pool.query('checkpoint');
    await sleep(100);
  }
  return kept;
}

/** Capture stopped: its schedules paused, its runs signalled to stop and finished, each slot idle. */
async function pauseCapture(run: LogicalRun): Promise<void> {
  for (const h of run.captures) await h.pause('benchmark: catch-up');
  await stopCaptureRuns(run.pipeline.temporal);
  const slots = run.lb.sources.map((s) => s.slot);
  // the worker closes a session no run has picked up for 2 s (capture/session-registry.ts)
  for (let i = 0; ; i++) {
    const active = await run.lb.pool.query(
      `select count(*)::int as n from pg_replication_slots where slot_name = any($1) and active`,
      [slots],
    );
    if (active.rows[0].n === 0) return;
    if (i > 300) throw new Error('the capture sessions did not let go of the slots in 30 s');
    await sleep(100);
  }
}

/** Inventory restocks of consecutive SKUs (every FC of each), about `rows` per transaction; the rows changed. */
function inventoryBacklogSql(changes: number, rows: number, skus: number, fcsPerSku: number): string {
  const per = Math.max(1, Math.ceil(rows / fcsPerSku));
  return `do $$
    declare n bigint := 0; k bigint := 0; c int; lo int;
    begin
      while n < ${changes} and k <= ${changes} loop
        lo := (k * ${per}) % ${skus};
        update shop.inventory set on_hand = on_hand + 1, updated_at = now()
         where sku_id >= 'SKU-' || lpad(lo::text, 7, '0') and sku_id < 'SKU-' || lpad((lo + ${per})::text, 7, '0');
        get diagnostics c = row_count;
        n := n + c;
        k := k + 1;
        commit;
      end loop;
      raise notice 'backlog rows %', n;
    end $$`;
}

/** New orders of one line each, `rows` per transaction, at each SKU's first FC; the rows inserted. */
function ordersBacklogSql(changes: number, rows: number, skus: number, fcs: number): string {
  return `do $$
    declare n bigint := 0;
    begin
      while n < ${changes} loop
        insert into shop.orders (sku_id, fc_id, qty, status)
          select 'SKU-' || lpad(((n + g) % ${skus})::text, 7, '0'), 'FC-' || lpad((((n + g) % ${skus}) % ${fcs})::text, 3, '0'), 1, 'placed'
            from generate_series(0, least(${rows}, ${changes} - n) - 1) g;
        n := n + least(${rows}, ${changes} - n);
        commit;
      end loop;
      raise notice 'backlog rows %', n;
    end $$`;
}

/** Runs a backlog DO block on the source; returns the rows it reports having changed. */
async function runBacklog(url: string, sql: string): Promise<number> {
  return withClient(url, async (c) => {
    let rows = 0;
    c.on('notice', (m) => {
      const n = /backlog rows (\d+)/.exec(m.message ?? '');
      if (n) rows = Number(n[1]);
    });
    await c.query(sql);
    return rows;
  });
}

/** The backlog, half into each source at once; the changes written per source and the seconds it took. */
async function writeBacklog(
  run: LogicalRun,
  o: Options,
): Promise<{ written: Record<string, number>; seconds: number }> {
  const { actual, lb } = run;
  const half = Math.round(o.backlog / 2);
  const t0 = performance.now();
  const [inventory, orders] = await Promise.all([
    runBacklog(lb.ownerUrl.inventory!, inventoryBacklogSql(half, o.backlogTxRows, actual.skus, actual.fcsPerSku)),
    runBacklog(lb.ownerUrl.orders!, ordersBacklogSql(o.backlog - half, o.backlogTxRows, actual.skus, actual.fcs)),
  ]);
  return { written: { inventory, orders }, seconds: (performance.now() - t0) / 1000 };
}

/** Changes each source's capture has written into the outbox so far (pipeline.capture_progress.rows). */
async function capturedRows(lb: LogicalBench): Promise<Record<string, number>> {
  const r = await lb.pool.query<{ source: string; rows: string }>(
    `select source, rows::text from pipeline.capture_progress`,
  );
  return Object.fromEntries(r.rows.map((row) => [row.source, Number(row.rows)]));
}

/** Seconds from `tResume` until each source's coverage (its newest tick in the outbox) is at or after this call. */
async function secondsUntilCovered(lb: LogicalBench, tResume: number): Promise<Record<string, number>> {
  const since = Date.now();
  const out: Record<string, number> = {};
  while (Object.keys(out).length < lb.sources.length) {
    const r = await lb.pool.query<{ source: string; covered: number | null }>(
      `select source, (extract(epoch from covered_at) * 1000)::float8 as covered from pipeline.capture_progress`,
    );
    for (const row of r.rows)
      if (out[row.source] === undefined && (row.covered ?? 0) >= since)
        out[row.source] = (performance.now() - tResume) / 1000;
    if (Date.now() - since > 900_000) throw new Error('capture did not catch up within 15 minutes');
    await sleep(20);
  }
  return out;
}

/** Capture resumed and timed: into the outbox per source, end to end into Redis, fresh reads; the CPU it took. */
async function resumeAndTime(run: LogicalRun) {
  const { lb, pipeline } = run;
  const before = await capturedRows(lb);
  const redis = masterNodes(lb.redis);
  const cpu0 = await sampleCpu({ ...pipeline.pids, bench: process.pid }, redis);
  const tResume = performance.now();
  for (const h of run.captures) {
    await h.unpause('benchmark: catch-up');
    await h.trigger(ScheduleOverlapPolicy.SKIP);
  }
  const [captureSeconds, caughtUp] = await Promise.all([
    secondsUntilCovered(lb, tResume),
    secondsUntilCaughtUp(lb, tResume, 900),
  ]);
  const cpu = cpuBetween(cpu0, await sampleCpu({ ...pipeline.pids, bench: process.pid }, redis));
  const after = await capturedRows(lb);
  const fresh = await secondsUntilFresh(pipeline.apiPort, tResume);
  const captured = Object.fromEntries(Object.keys(after).map((k) => [k, after[k]! - (before[k] ?? 0)]));
  return { captureSeconds, caughtUp, cpu, captured, fresh };
}

/** 2. Catch-up of a slot backlog written while capture is paused. */
export async function measureCatchUp(run: LogicalRun, o: Options): Promise<CatchUp> {
  const { lb } = run;
  log('catch-up: waiting for the slots to let go of the WAL of the section before ...');
  const keptAtPause = await untilSlotsRestartNearEnd(lb);
  log(`catch-up: pausing capture and writing ${int(o.backlog)} changes into the two sources ...`);
  await pauseCapture(run);
  // The pipeline's own speed: the landing consumer waits until the catch-up is measured.
  await run.landing.pause('benchmark: catch-up');
  const { written, seconds: writeSeconds } = await writeBacklog(run, o);
  log(`  written in ${writeSeconds.toFixed(1)} s; the server decoding each slot's backlog (nothing consumed) ...`);
  const decode: CatchUp['decode'] = {};
  for (const s of lb.sources)
    decode[s.name] = await withClient(lb.ownerUrl[s.name]!, (c) => slotDecodeChangesPerS(c, s.slot, s.publication));
  log('  resuming capture ...');
  const timed = await resumeAndTime(run);
  await run.landing.unpause('benchmark: catch-up measured');
  log('  outbox scan limit over the backlog ...');
  await lb.pool.query('analyze pipeline.outbox');
  const scan = await outboxScanRowsPerS(lb.pool);
  return { written, writeSeconds, keptAtPause, decode, ...timed, scanRowsPerS: scan.rowsPerS };
}
