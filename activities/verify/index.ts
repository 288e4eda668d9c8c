import { heartbeat } from '@temporalio/activity';
import type { StoreRedis } from '../../store/redis-client';
import type pg from 'pg';
import type { Config } from '../../config';
import { StoreKeys } from '../../store/keys';
import { verifyStore, VerifyOptions } from '../../reconcile/verify';
import { planRepairs, reemitPlanned } from '../../reconcile/repair';
import type { DrainMetrics } from '../metrics';
import { backfillLoads } from '../backfill/backfill';
import { applyOptions } from '../apply-options';
import { refuseUnderLogicalCapture } from '../../capture/logical-limits';

type Log = (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;

export function createVerifyActivities(deps: {
  pool: pg.Pool;
  sourcePool: pg.Pool;
  redis: StoreRedis;
  keys: StoreKeys;
  config: Config;
  metrics?: DrainMetrics;
  log?: Log;
}) {
  return {
    /** Reconciles the store against the source (replica when configured); see reconcile/verify.ts. */
    async verifyStore(input: VerifyOptions) {
      refuseUnderLogicalCapture(deps.config, 'verify');
      return verifyStore(
        deps.sourcePool,
        deps.redis,
        deps.keys,
        { loadTtlS: deps.config.LOAD_TTL_S, ...input },
        (checked) => heartbeat({ checkedSkus: checked }),
        deps.pool,
      );
    },

    /**
     * The scheduled, sampled verify: a sample of SKUs, every FC, region and daily load, and badges
     * for some of the sampled SKUs; whatever still differs once the drain has caught up is counted
     * (fresh_badges_verify_mismatches_total), logged one line per difference, and repaired through
     * the outbox (reconcile/repair.ts). Cheap enough to leave on: a few hundred keyed reads.
     */
    async verifyAndRepair(input: { sample: number; badgeSkus?: number; settleMs?: number }) {
      refuseUnderLogicalCapture(deps.config, 'verify');
      const report = await verifyStore(
        deps.sourcePool,
        deps.redis,
        deps.keys,
        {
          sample: input.sample,
          badgeSkus: input.badgeSkus ?? 50,
          settleMs: input.settleMs ?? 30_000,
          loadTtlS: deps.config.LOAD_TTL_S,
        },
        (checked) => heartbeat({ checkedSkus: checked }),
        deps.pool,
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
      const reemitted = await reemitPlanned(deps.pool, plan);
      const counters = plan.loads
        ? (await backfillLoads(deps.pool, deps.sourcePool, deps.redis, deps.keys, applyOptions(deps.config))).counters
        : 0;
      const repairs = reemitted.refreshed + reemitted.deleted + (plan.loads ? 1 : 0);
      if (repairs)
        deps.log?.(
          'warn',
          `verify: repaired through the outbox: ${reemitted.refreshed} row(s) re-emitted, ${reemitted.deleted} delete(s)${plan.loads ? `, ${counters} load counter(s) recomputed` : ''}`,
        );
      deps.metrics?.verified?.(byFeature, repairs);
      return {
        checkedSkus: report.checkedSkus,
        checkedBadges: report.checkedBadges,
        settled: report.settled,
        mismatches: report.mismatches.slice(0, 50),
        mismatchCount: report.mismatches.length,
        reemitted,
        loadCounters: counters,
      };
    },
  };
}
