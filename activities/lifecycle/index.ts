import { activityInfo, heartbeat } from '@temporalio/activity';
import { setTimeout as sleep } from 'node:timers/promises';
import type { StoreRedis } from '../../store/redis-client';
import type pg from 'pg';
import type { StoreKeys } from '../../store/keys';
import { rebuildDone } from '../../store/rebuild-requests';
import type { SkuReread, SourceRows } from '../../capture/source-rows';
import type { HandedChunk } from '../../capture/watermark-read';
import { activityChunkWait } from '../chunk-wait';
import { drainCovers, pipelineSnapshot } from '../../reconcile/source-view';
import { inActivity } from '../in-activity';

/**
 * How long finishSkuRebuild waits for the drain: its first attempt a second (the drain applies the
 * rows within a pass or two), its retries not at all; 20 s outside an activity, and for a rebuild
 * with no snapshot (begun on an older worker: each attempt takes a snapshot of its own, which a
 * busy drain has never applied at once). A waiting attempt holds one of the worker's activity
 * slots, which the drain needs too: a mass reactivation starts hundreds of rebuilds, and waiting in
 * the slots they held the drain out of the worker, so every read went stale. Temporal's retry
 * back-off does the waiting instead, holding nothing (workflows/activity-options.ts).
 */
const APPLIED_WAIT_MS = 20_000;
const FIRST_ATTEMPT_WAIT_MS = 1_000;

/**
 * How long a SKU's re-read waits for the capture to write it: its first attempt 2 s (a running
 * capture writes it within a tick or two), a retry 1 s. A waiting attempt holds a worker slot, as
 * finishSkuRebuild's does; behind a lagging capture the retry back-off does the waiting.
 */
const FIRST_REREAD_WAIT_MS = 2_000;
const REREAD_WAIT_MS = 1_000;

/** The re-read's wait in this attempt, resuming the chunks an earlier attempt handed over. */
function rereadInActivity(): SkuReread {
  let handed = handedChunksOf(activityInfo().heartbeatDetails);
  return {
    ...activityChunkWait(() => ({ handed })),
    handed,
    onHanded: (chunks) => {
      handed = chunks;
      heartbeat({ handed }); // at once: a failure after it still leaves the chunks to the retry
    },
    waitMs: activityInfo().attempt === 1 ? FIRST_REREAD_WAIT_MS : REREAD_WAIT_MS,
  };
}

/** The chunks in an earlier attempt's heartbeat details; undefined when there are none (or not of this shape). */
export function handedChunksOf(details: unknown): HandedChunk[] | undefined {
  const handed = (details as { handed?: unknown } | null | undefined)?.handed;
  if (!Array.isArray(handed)) return undefined;
  const ok = handed.every(
    (c: { id?: unknown; highLsn?: unknown } | null) =>
      typeof c?.id === 'string' &&
      /^[0-9]{1,19}$/.test(c.id) &&
      typeof c.highLsn === 'string' &&
      /^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/.test(c.highLsn),
  );
  return ok ? handed.map((c: HandedChunk) => ({ id: c.id, highLsn: c.highLsn })) : undefined;
}

export class RebuildNotAppliedYet extends Error {
  override name = 'RebuildNotAppliedYet';
}

export function createLifecycleActivities(deps: {
  pool: pg.Pool;
  redis: StoreRedis;
  keys: StoreKeys;
  sourceRows: SourceRows;
}) {
  return {
    /**
     * Re-emits one SKU's current source rows through the outbox (idempotent; safe to repeat).
     * Returns the pipeline database's snapshot once they are committed there: it sees them all.
     * Under capture from the WAL the capture writes them; an attempt waits for it briefly
     * (REREAD_WAIT_MS) and fails when it is behind, and the retry waits on the chunks the failed
     * attempt handed over (its heartbeat's details) instead of reading the rows again.
     */
    async refreshSku(input: { sku: string }): Promise<{ rows: number; snapshot: string }> {
      const r = await deps.sourceRows.refreshSku(input.sku, inActivity() ? rereadInActivity() : {});
      return { ...r, snapshot: await pipelineSnapshot(deps.pool) };
    },

    /**
     * Clears the SKU's rebuild request once the drain has applied everything `snapshot` saw (the
     * re-emitted rows among it). Not sooner: reads answer the SKU `unknown` while the request is
     * pending, and between the re-emission and its apply the store still lacks the SKU's stock, so
     * a read would answer out_of_stock as fresh. Waits briefly (APPLIED_WAIT_MS), then fails and is
     * retried (a paused or backlogged drain). Without a snapshot (a rebuild whose refreshSku ran on a
     * worker from before this step, which cleared the request itself), one taken now: it sees the
     * rows that run re-emitted.
     */
    async finishSkuRebuild(input: { sku: string; snapshot?: string }): Promise<void> {
      const snapshot = input.snapshot ?? (await pipelineSnapshot(deps.pool));
      const waitMs =
        !inActivity() || !input.snapshot ? APPLIED_WAIT_MS : activityInfo().attempt === 1 ? FIRST_ATTEMPT_WAIT_MS : 0;
      const deadline = Date.now() + waitMs;
      while (!(await drainCovers(deps.pool, snapshot))) {
        if (Date.now() >= deadline)
          throw new RebuildNotAppliedYet(
            `the drain has not yet applied SKU ${input.sku}'s re-emitted rows (paused or behind): waiting`,
          );
        if (inActivity()) heartbeat();
        await sleep(200);
      }
      await rebuildDone(deps.redis, deps.keys, input.sku);
    },
  };
}
