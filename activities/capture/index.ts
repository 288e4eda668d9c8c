/**
 * Capture activities (docs/capture.md): one activity per source database streams its slot into the
 * outbox for a time budget, heartbeating its progress (what the Web UI shows of the running
 * activity) and stopping promptly when cancelled (`ops pause`). The session behind it stays open
 * for the next activity of the chain (capture/session-registry.ts).
 *
 * One chain per source: the lease `capture:<source>` (a manual second run steps aside). The slot
 * itself admits one stream: a run that finds it busy (the session of a run on another worker not
 * yet closed, or a walsender not yet gone) fails and is retried a moment later.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import type pg from 'pg';
import { PublicationIncompleteError, TriggerCapturedError, type CaptureProgress } from '../../capture/capture-loop';
import { SlotBusyError } from '../../capture/replication-stream';
import { SourceSetupError } from '../../capture/row-image';
import { withCaptureSession } from '../../capture/session-registry';
import { captureSources, type CaptureSource } from '../../capture/sources';
import { ConfigurationError, type Config } from '../../config';
import { acquireLease, releaseLease, type LeaseState } from '../../outbox/lease';
import { throttledHeartbeat } from '../heartbeat-throttle';

export interface CaptureActivityInput {
  /** The source's name ('inventory', 'orders', or 'shop'). */
  source: string;
  /** The workflow id of the chain: the lease's owner. */
  owner: string;
  /** Stream for this long. */
  budgetMs: number;
}

export type CaptureActivityResult =
  ({ outcome: 'captured'; elapsedMs: number } & CaptureProgress) | { outcome: 'lease-lost'; holder: string };

export const captureLeaseName = (source: string) => `capture:${source}`;

/**
 * The lease renewed while the activity streams, once half its TTL (DRAIN_LEASE_TTL_MS) is gone:
 * it was taken only when an activity began, so it lapsed in the middle of every activity longer
 * than the TTL; `ops status` then showed the source's lease free, and a second run started by hand
 * took it and ended this chain. (Mutual exclusion of the stream rests on the slot, which admits
 * one, and on the source's generation: capture/capture-loop.ts.) A renewal found taken is only
 * logged: this run finds the lease lost when its next activity begins.
 */
function leaseRenewal(
  take: () => Promise<LeaseState>,
  ttlMs: number,
  warn: (m: string) => void,
): { tick: () => void; stop: () => Promise<void> } {
  let renewedAt = Date.now();
  let pending: Promise<void> | null = null;
  let stopped = false;
  return {
    tick() {
      if (stopped || pending || Date.now() - renewedAt < ttlMs / 2) return;
      pending = take()
        .then((held) => {
          renewedAt = Date.now();
          if (!held.acquired)
            warn(`the capture lease is held by ${held.holder}: this run steps aside after this activity`);
        })
        .catch(() => undefined) // the pipeline database unreachable: the stream's own writes fail and say so
        .finally(() => (pending = null));
    },
    /** No renewal after this: one still in flight is waited for, so it cannot take the lease back after the run released it. */
    async stop() {
      stopped = true;
      await pending;
    },
  };
}

/** What the activity heartbeats: the run's progress, or that its session is still opening. */
type CaptureHeartbeat = CaptureProgress | { source: string; state: 'opening' };

/** How often the activity heartbeats whatever its run reports (well inside the 3-s timeout). */
const KEEP_ALIVE_MS = 1_000;

/**
 * What a failed capture throws out of the activity: a busy slot and the worker's shutdown (which
 * ended a session still opening) are retried, by another worker for the latter; anything else, a
 * cancellation (`ops pause`) included, as it is.
 */
function leavingActivity(
  err: unknown,
  source: string,
  cancelled: AbortSignal,
  stopping: AbortSignal | undefined,
): unknown {
  if (err instanceof SlotBusyError)
    return ApplicationFailure.retryable(`the slot of ${source} is busy: ${err.message}`, 'SlotBusy');
  // refused until an operator acts (npm start in either mode): asked again every 30 s, not at once
  if (
    err instanceof TriggerCapturedError ||
    err instanceof PublicationIncompleteError ||
    err instanceof SourceSetupError
  )
    return ApplicationFailure.create({ message: err.message, type: err.name, nextRetryDelay: '30s' });
  if (stopping?.aborted && !cancelled.aborted && err === stopping.reason)
    return ApplicationFailure.retryable(
      `the worker is shutting down: the capture session of ${source} stopped opening`,
      'WorkerShutdown',
    );
  return err;
}

export function createCaptureActivities(deps: { pool: pg.Pool; config: Config; stopping?: AbortSignal }) {
  const sourceNamed = (name: string): CaptureSource => {
    const source = captureSources(deps.config).find((s) => s.name === name);
    if (!source)
      throw new ConfigurationError(
        `no capture source named ${JSON.stringify(name)} in this configuration (INVENTORY_DATABASE_URL, ORDERS_DATABASE_URL)`,
      );
    return source;
  };
  const lease = (source: string, owner: string) =>
    acquireLease(deps.pool, captureLeaseName(source), owner, deps.config.DRAIN_LEASE_TTL_MS);

  return {
    async acquireCaptureLease(input: { source: string; owner: string }): Promise<LeaseState> {
      sourceNamed(input.source);
      return lease(input.source, input.owner);
    },
    async releaseCaptureLease(input: { source: string; owner: string }): Promise<boolean> {
      return releaseLease(deps.pool, captureLeaseName(input.source), input.owner);
    },
    async captureSource(input: CaptureActivityInput): Promise<CaptureActivityResult> {
      const ctx = Context.current();
      const source = sourceNamed(input.source);
      const held = await lease(input.source, input.owner);
      if (!held.acquired) return { outcome: 'lease-lost', holder: held.holder };
      const started = Date.now();
      const beat = throttledHeartbeat((p: CaptureHeartbeat) => ctx.heartbeat(p));
      // The run reports after every write and at least every second. Before it, a session opens:
      // creating a slot waits for every transaction running on the source, however long one is
      // held open; after it, the session may close. Without a heartbeat meanwhile the activity
      // would time out (3 s) and be retried into the same wait.
      let last: CaptureHeartbeat = { source: source.name, state: 'opening' };
      const renew = leaseRenewal(
        () => lease(input.source, input.owner),
        deps.config.DRAIN_LEASE_TTL_MS,
        (m) => ctx.log.warn(m),
      );
      const keepAlive = setInterval(() => {
        beat(() => last);
        renew.tick();
      }, KEEP_ALIVE_MS);
      // A pause (cancellation) or the worker's shutdown: a run writes what it read, then returns; a
      // session still opening (a slot's creation waiting behind a transaction held open on the
      // source) stops waiting, closes what it opened and throws the signal's reason, so a pause
      // ends the activity as cancelled.
      const signal = deps.stopping ? AbortSignal.any([ctx.cancellationSignal, deps.stopping]) : ctx.cancellationSignal;
      try {
        const progress = await withCaptureSession(
          source,
          deps.pool,
          (session) =>
            session.run({
              budgetMs: input.budgetMs,
              tickMs: deps.config.CAPTURE_TICK_MS,
              signal,
              onProgress: (p) => {
                last = p;
                beat(() => p);
              },
              log: (m) => ctx.log.warn(m),
            }),
          signal,
        );
        return { outcome: 'captured', elapsedMs: Date.now() - started, ...progress };
      } catch (err) {
        throw leavingActivity(err, source.name, ctx.cancellationSignal, deps.stopping);
      } finally {
        clearInterval(keepAlive);
        await renew.stop();
      }
    },
  };
}
