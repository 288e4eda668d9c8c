/**
 * After a chunk's commit: what the store (its watermark) and the workflow (the result) learn from
 * it, and the SKUs whose stock needs a rebuild.
 */
import { changeTracingOn, recordDrainApply } from '../../tracing/change-trace';
import { hold } from '../../store/held';
import { pendingRebuilds } from '../../store/rebuild-requests';
import type { StoreKeys } from '../../store/keys';
import { markCaughtUp, recordApplied } from '../../store/watermark';
import type { ConsumerCursor } from '../../outbox';
import { emptyResult, type AppliedChunk, type DrainBatchResult, type DrainDeps, type Target } from './types';

/**
 * How long ago the target's time was, now (ms): by the pipeline database's clock up to the pass's
 * start (`dbNowMs`, read in the statement after the BEGIN), then by this process's monotonic clock
 * since `t0`, taken before that BEGIN was sent. Two clocks' differences, never their offset, so a
 * database or worker clock that is off cannot shorten it. Null (unknown: nothing is confirmed) for
 * a time later than that start: every target time is read in a statement before it, so the
 * database's clock went back since (NTP, a failover to a server whose clock is behind); an age of
 * 0 would confirm it as now, however old it is in truth. The next targets carry the clock as it is.
 */
export const ageOf = (at: number, dbNowMs: number, t0: number): number | null =>
  at > dbNowMs ? null : dbNowMs - at + (performance.now() - t0);

/** What a pass confirms as caught up: its target's time and that time's age, or nothing (ageOf). */
function caughtUpOf(at: number | null, dbNowMs: number, t0: number): { at: number; ageMs: number } | null {
  if (at === null) return null;
  const ageMs = ageOf(at, dbNowMs, t0);
  return ageMs === null ? null : { at, ageMs };
}

export async function afterIdle(
  deps: DrainDeps,
  idle: { next: ConsumerCursor; target: Target; dbNowMs: number },
  t0: number,
): Promise<DrainBatchResult> {
  const caught = caughtUpOf(idle.target.at, idle.dbNowMs, t0);
  const storeComplete = caught
    ? await markCaughtUp(deps.redis, deps.keys, caught.at, caught.ageMs, idle.next.last)
    : true;
  const rebuildSkus = await rebuildRequests(deps, []);
  return {
    outcome: 'idle',
    ...emptyResult(idle.next),
    caughtUp: true,
    ...(rebuildSkus.length ? { rebuildSkus } : {}),
    ...(storeComplete ? {} : { storeIncomplete: true }),
  };
}

/**
 * A pass's result, and its watermark write: sent, not yet answered. The drain's next pass goes on
 * meanwhile (its first round trip is PostgreSQL's; its Redis calls queue behind the watermark on
 * the same connection, so they run after it) and the caller learns `storeComplete` then.
 */
export interface AppliedPass {
  result: DrainBatchResult;
  /** Whether every partition was complete (false: the result should have said storeIncomplete). */
  watermark: Promise<boolean>;
}

export async function afterApplied(deps: DrainDeps, c: AppliedChunk, t0: number): Promise<AppliedPass> {
  // Held again now that the letters are committed, before the watermark moves: a retry of an
  // older letter of the same subject may have released the hold since the first (store/held.ts).
  if (c.dead.size)
    await hold(
      deps.redis,
      deps.keys,
      [...c.dead.keys()].map((i) => c.rows[i]!),
    );
  const watermark = recordApplied(deps.redis, deps.keys, {
    newestSourceMs: c.newestSourceMs,
    appliedAt: Date.now(),
    caughtUp: c.complete ? caughtUpOf(c.target.at, c.dbNowMs, t0) : null,
    applied: c.next.last,
  });
  watermark.catch(() => undefined); // the caller awaits it; a failure is thrown there
  // A SKU updated back to active/paused whose key had no lifecycle any more (the tombstone
  // expired, or the store lost it): its stock is not in the store. A brand-new SKU (insert)
  // needs nothing: its inventory rows arrive as changes of their own.
  const rebuildSkus = await rebuildRequests(
    deps,
    c.applied.rebuild.map((i) => c.rows[i].key),
  );
  deps.metrics?.batch(c.rows.length, (performance.now() - t0) / 1000, c.applySeconds);
  deps.metrics?.freshness(
    c.rows.map((r) => r.created_ms),
    c.visibleAt,
  );
  if (c.dead.size) deps.metrics?.deadLetters(c.dead.size);
  if (c.dead.size)
    deps.log?.('warn', `drain sent ${c.dead.size} change(s) to dead letters`, { first: [...c.dead.values()][0] });
  if (changeTracingOn()) traceApplied(deps, c, t0);
  const result: DrainBatchResult = {
    outcome: 'applied',
    rows: c.rows.length,
    applied: c.applied.applied,
    deadLetters: c.dead.size,
    cursor: c.next,
    caughtUp: c.complete,
    newestSourceMs: c.newestSourceMs,
    ...(rebuildSkus.length ? { rebuildSkus } : {}),
  };
  return { result, watermark };
}

/**
 * SKUs whose stock needs a rebuild: the ones this batch reactivated, and every request still
 * pending in the store (a worker that died after its commit, before starting the rebuild), looked
 * up at most every few seconds per worker.
 */
// per shard's view of the store (views are cached: one object per shard)
const lastPendingLookup = new WeakMap<StoreKeys, number>();

async function rebuildRequests(deps: DrainDeps, raised: string[]): Promise<string[]> {
  const now = Date.now();
  if (raised.length === 0 && now - (lastPendingLookup.get(deps.keys) ?? 0) < 5_000) return [];
  lastPendingLookup.set(deps.keys, now);
  // At most MAX_REBUILDS_REPORTED: a batch of thousands of reactivations reports a part, and the
  // rest, durable in {p}rebuilds, come with the next lookups.
  if (raised.length >= MAX_REBUILDS_REPORTED) return [...new Set(raised)].slice(0, MAX_REBUILDS_REPORTED);
  return [...new Set([...raised, ...(await pendingRebuilds(deps.redis, deps.keys))])].slice(0, MAX_REBUILDS_REPORTED);
}

/** SKU rebuilds one drain activity reports for the workflow to start (also the pending lookup's size). */
export const MAX_REBUILDS_REPORTED = 50;

/** Outbox transactions whose trace one batch adds its apply to (a huge catch-up batch: the first ones). */
const MAX_TRACED_TRANSACTIONS = 64;

/** The batch's apply as a span in the trace of each outbox transaction it held rows of. */
function traceApplied(deps: DrainDeps, c: AppliedChunk, t0: number): void {
  const rowsOf = new Map<string, number>();
  for (const r of c.rows) rowsOf.set(r.txid, (rowsOf.get(r.txid) ?? 0) + 1);
  // wall-clock start (performance.timeOrigin drifts from the wall clock in a long-lived process)
  const startMs = Date.now() - (performance.now() - t0);
  for (const [txid, rows] of [...rowsOf].slice(0, MAX_TRACED_TRANSACTIONS))
    recordDrainApply(txid, startMs, {
      'fresh_badges.outbox_txid': txid,
      'fresh_badges.rows': rows,
      'fresh_badges.batch_rows': c.rows.length,
      'fresh_badges.shard': deps.shard ? `${deps.shard.index} of ${deps.shard.count}` : '0 of 1',
      'fresh_badges.cursor_batch': c.next.batch,
    });
}
