/**
 * Where the running pipeline is, for the end-to-end benchmarks (`npm run bench`,
 * `npm run bench:e2e-logical`): what the drain has left, waiting for it and for the landing
 * consumer, the steady state before measuring, and the catch-up measurement's two clocks (caught
 * up; reads fresh again).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import http from 'node:http';
import { ScheduleHandle, ScheduleOverlapPolicy } from '@temporalio/client';
import { names } from '../../config';
import { createActivities } from '../../activities';
import { pendingRows, readCursor } from '../../outbox';
import { regionId } from '../../simulator/catalogue';
import { localActivities } from '../lib/local-activities';
import type { Bench } from './bench-env';
import { httpGetJson, PROBES } from './freshness-probes';
import { int } from './stats';

const log = (s: string) => process.stderr.write(`${s}\n`);

/** Outbox rows the drain has not applied yet. */
export async function backlog(b: Bench): Promise<number> {
  return (await pendingRows(b.pool, names.drainConsumer, 100_000_000)).rows;
}

export async function waitForDrain(b: Bench, pollMs: number): Promise<void> {
  while ((await backlog(b)) > 0) await sleep(pollMs);
}

/** Until the landing consumer has (almost) nothing left to land, triggering its schedule meanwhile. */
export async function waitForLanding(b: Bench, landing: ScheduleHandle): Promise<void> {
  for (;;) {
    const left = (await pendingRows(b.pool, names.landingConsumer, 1_000_000)).rows;
    if (left < 20_000) return;
    log(`  waiting for the landing consumer: ${int(left)} changes to land ...`);
    await landing.trigger(ScheduleOverlapPolicy.SKIP).catch(() => undefined);
    await sleep(5000);
  }
}

/**
 * The freshly started pipeline in its steady state: the load drained and landed, earlier runs'
 * leftovers gone (`vacuum` VACUUMs the tables the benchmark writes).
 */
export async function settlePipeline(b: Bench, landing: ScheduleHandle, vacuum: () => Promise<void>): Promise<void> {
  await sleep(1000);
  await waitForDrain(b, 500);
  // A drain that is running, not only an outbox with nothing new: an earlier run's lease (its
  // worker was stopped before its run could release it) sends this run's first drain away until it
  // expires (DRAIN_LEASE_TTL_MS) and the schedule fires again, up to a minute later.
  log('waiting for the drain to apply a snapshot taken now ...');
  await secondsUntilCaughtUp(b, performance.now(), 180);
  // The landing consumer (Parquet for the nightly export) has the whole catalogue load to land
  // once; measuring freshness while it works that off would measure the one-off, not the steady
  // state (where it lands one minute of changes per minute).
  await waitForLanding(b, landing);
  // What earlier runs left: applied outbox rows (compaction, as the hourly schedule would) and
  // the dead row versions of the restocks (no autovacuum on this machine). Without this each run
  // on the same database measured a little slower than the one before.
  log('pruning the applied outbox and vacuuming the bench tables ...');
  await localActivities(createActivities(b)).compactOutbox({ retentionMs: 0, maxRows: 1_000_000_000 });
  await vacuum();
}

/**
 * Seconds from `tResume` (performance.now()) until the drain has applied a snapshot that holds
 * every source change committed before this call: a completed batch whose snapshot time (`asOf`;
 * under capture from the WAL bounded by every source's coverage) is at or after it.
 */
export async function secondsUntilCaughtUp(b: Bench, tResume: number, timeoutS = Infinity): Promise<number> {
  // (a cheap poll of the cursor; counting the backlog every 100 ms would itself load PostgreSQL)
  const resumedAt = Date.now();
  for (;;) {
    const cursor = await readCursor(b.pool, names.drainConsumer);
    if (cursor.to === null && (cursor.fromAt ?? 0) >= resumedAt) return (performance.now() - tResume) / 1000;
    if (Date.now() - resumedAt > timeoutS * 1000)
      throw new Error(
        `the pipeline did not catch up within ${timeoutS} s (is capture or the drain failing? see the worker's log)`,
      );
    await sleep(20);
  }
}

/** Seconds from `tResume` until the read API no longer answers stale. */
export async function secondsUntilFresh(apiPort: number, tResume: number): Promise<number> {
  const agent = new http.Agent({ keepAlive: true });
  for (;;) {
    const r = await httpGetJson(apiPort, `/v1/badges/${PROBES[0]}?region=${regionId(0)}`, agent);
    if (!r.stale) {
      const fresh = (performance.now() - tResume) / 1000;
      agent.destroy();
      return fresh;
    }
    await sleep(50);
  }
}
