import { heartbeat } from '@temporalio/activity';
import type { StoreRedis } from '../../store/redis-client';
import type pg from 'pg';
import type { Config } from '../../config';
import { StoreKeys } from '../../store/keys';
import { verifyView, VerifyOptions, VerifyReport } from '../../reconcile/verify';
import { planRepairs } from '../../reconcile/repair';
import type { DrainMetrics } from '../metrics';
import { backfillLoads } from '../backfill/backfill';
import { applyOptions } from '../apply-options';
import { withLogicalView, withTriggerView } from '../../reconcile/source-view';
import { captureSources } from '../../capture/sources';
import { sourceRowsFor } from '../../capture/source-rows';
import { activityChunkWait } from '../chunk-wait';
import { createWatermarkBackfill } from '../backfill/through-watermarks';

type Log = (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;

interface VerifyDeps {
  pool: pg.Pool;
  sourcePool: pg.Pool;
  redis: StoreRedis;
  keys: StoreKeys;
  config: Config;
  metrics?: DrainMetrics;
  log?: Log;
}

/**
 * The store against the sources, by the capture mode's view of them (reconcile/source-view.ts):
 * under the trigger capture one snapshot of the source (its replica when configured), under
 * capture from the WAL one per source database.
 */
function verifyAgainstSources(deps: VerifyDeps, opts: VerifyOptions): Promise<VerifyReport> {
  const onProgress = (checked: number) => heartbeat({ checkedSkus: checked });
  const run = (view: Parameters<typeof verifyView>[0]) => verifyView(view, deps.redis, deps.keys, opts, onProgress);
  return deps.config.CAPTURE_MODE === 'logical'
    ? withLogicalView(captureSources(deps.config), deps.pool, run)
    : withTriggerView(deps.sourcePool, deps.pool, run);
}

/**
 * Repairs through the pipeline's own paths (reconcile/repair.ts): rows re-read into the outbox by
 * the capture mode's source reader, loads recomputed whole (as a backfill does).
 */
async function repairThroughOutbox(deps: VerifyDeps, plan: ReturnType<typeof planRepairs>) {
  const reemitted = plan.rows.length
    ? await sourceRowsFor(deps.config, deps.pool).refresh(plan.rows, { deleteAbsent: true, ...activityChunkWait() })
    : { refreshed: 0, deleted: 0 };
  let counters = 0;
  if (plan.loads)
    counters =
      deps.config.CAPTURE_MODE === 'logical'
        ? (await createWatermarkBackfill(deps).loads()).counters
        : (await backfillLoads(deps.pool, deps.sourcePool, deps.redis, deps.keys, applyOptions(deps.config))).counters;
  return { reemitted, counters };
}

export function createVerifyActivities(deps: VerifyDeps) {
  return {
    /** Reconciles the store against the sources; see reconcile/verify.ts. */
    async verifyStore(input: VerifyOptions) {
      return verifyAgainstSources(deps, { loadTtlS: deps.config.LOAD_TTL_S, ...input });
    },

    /**
     * The scheduled, sampled verify: a sample of SKUs, every FC, region and daily load, and badges
     * for some of the sampled SKUs; whatever still differs once the drain has caught up is counted
     * (fresh_badges_verify_mismatches_total), logged one line per difference, and repaired through
     * the outbox (reconcile/repair.ts). Cheap enough to leave on: a few hundred keyed reads.
     */
    async verifyAndRepair(input: { sample: number; badgeSkus?: number; settleMs?: number }) {
      const settleMs = input.settleMs ?? 30_000;
      const report = await verifyAgainstSources(deps, {
        sample: input.sample,
        badgeSkus: input.badgeSkus ?? 50,
        settleMs,
        loadTtlS: deps.config.LOAD_TTL_S,
      });
      // Lag is not a mismatch: a store that had not caught up is neither counted nor "repaired"
      // (a repair would only add re-read rows to the backlog).
      if (report.unjudged.length)
        deps.log?.(
          'warn',
          `verify: the drain had not applied the sources' changes within ${settleMs / 1000} s; ${report.unjudged.length} difference(s) left unjudged and unrepaired (the pipeline is behind: see fresh_badges_drain_lag_seconds)`,
          { unjudged: report.unjudged.length },
        );
      const byFeature: Record<string, number> = {};
      for (const m of report.mismatches) {
        byFeature[m.feature] = (byFeature[m.feature] ?? 0) + 1;
        deps.log?.('warn', `verify: the store differs from the source: ${m.feature} ${m.key}`, {
          feature: m.feature,
          key: m.key,
          source: m.source,
          store: m.store,
        });
      }
      const plan = planRepairs(report.mismatches);
      const { reemitted, counters } = await repairThroughOutbox(deps, plan);
      const repairs = reemitted.refreshed + reemitted.deleted + (plan.loads ? 1 : 0);
      if (repairs)
        deps.log?.(
          'warn',
          `verify: repaired through the outbox: ${reemitted.refreshed} row(s) re-emitted, ${reemitted.deleted} delete(s)${plan.loads ? `, ${counters} load counter(s) recomputed` : ''}`,
        );
      deps.metrics?.verified?.(byFeature, repairs, report.unjudged.length);
      return {
        checkedSkus: report.checkedSkus,
        checkedBadges: report.checkedBadges,
        settled: report.settled,
        mismatches: report.mismatches.slice(0, 50),
        mismatchCount: report.mismatches.length,
        unjudgedCount: report.unjudged.length,
        reemitted,
        loadCounters: counters,
      };
    },
  };
}
