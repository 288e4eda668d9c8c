/**
 * The pipeline's activities for a test: real clients, each call in an activity context
 * (scripts/lib/local-activities.ts).
 *
 * With DRAIN_SHARDS > 1 (the cluster run: TEST_DRAIN_SHARDS), a drain call that names no shard is
 * what "the drain" is then: every shard's batch, run concurrently as their workflows would, with
 * the results added up (rows and applied count each shard's share; a row every shard reads, an
 * FC's or an order's, counts once per shard). The lease calls take or release every shard's.
 */
import { ActivityClients, createActivities } from '../../activities';
import type { DrainBatchResult } from '../../activities/drain';
import { localActivities } from '../../scripts/lib/local-activities';
import { fileCapture, LOGICAL_RUN } from './logical-run';

/**
 * The logical run: every call first waits until the changes committed on the sources so far are
 * in the outbox (test/support/logical-run.ts), as the trigger capture's own write guarantees.
 */
function afterCapture<T extends Record<string, unknown>>(acts: T): T {
  if (!LOGICAL_RUN) return acts;
  const out = {} as Record<string, unknown>;
  for (const [name, fn] of Object.entries(acts))
    out[name] =
      typeof fn === 'function'
        ? async (...args: unknown[]) => {
            await fileCapture.caughtUp();
            return (fn as (...a: unknown[]) => unknown)(...args);
          }
        : fn;
  return out as T;
}

export const activitiesFor = (clients: ActivityClients) => {
  const acts = afterCapture(localActivities(createActivities(clients)));
  const shards = clients.config.DRAIN_SHARDS;
  if (shards === 1) return acts;
  const each = Array.from({ length: shards }, (_, index) => ({ index, count: shards }));
  return {
    ...acts,
    async acquireDrainLease(input: Parameters<typeof acts.acquireDrainLease>[0]) {
      if (input.shard) return acts.acquireDrainLease(input);
      const all = await Promise.all(each.map((shard) => acts.acquireDrainLease({ ...input, shard })));
      return all.find((l) => !l.acquired) ?? all[0];
    },
    async releaseDrainLease(input: Parameters<typeof acts.releaseDrainLease>[0]) {
      if (input.shard) return acts.releaseDrainLease(input);
      const all = await Promise.all(each.map((shard) => acts.releaseDrainLease({ ...input, shard })));
      return all.some(Boolean);
    },
    async drainBatch(input: Parameters<typeof acts.drainBatch>[0]) {
      if (input.shard) return acts.drainBatch(input);
      return mergeResults(await Promise.all(each.map((shard) => acts.drainBatch({ ...input, shard }))));
    },
  };
};

const OUTCOME_WEIGHT: Record<DrainBatchResult['outcome'], number> = {
  'lease-lost': 6,
  retired: 5,
  repaired: 4,
  applied: 3,
  busy: 2,
  idle: 1,
};

/** The shards' results as one: the most telling outcome, sums, and what any of them raised. */
function mergeResults(results: DrainBatchResult[]): DrainBatchResult {
  const top = results.reduce((a, b) => (OUTCOME_WEIGHT[b.outcome] > OUTCOME_WEIGHT[a.outcome] ? b : a));
  const rebuild = [...new Set(results.flatMap((r) => r.rebuildSkus ?? []))];
  const newest = results.map((r) => r.newestSourceMs).filter((v): v is number => v !== null);
  return {
    ...top,
    rows: results.reduce((n, r) => n + r.rows, 0),
    applied: results.reduce((n, r) => n + r.applied, 0),
    deadLetters: results.reduce((n, r) => n + r.deadLetters, 0),
    caughtUp: results.every((r) => r.caughtUp),
    newestSourceMs: newest.length ? Math.max(...newest) : null,
    ...(rebuild.length ? { rebuildSkus: rebuild } : {}),
    ...(results.some((r) => r.storeIncomplete) ? { storeIncomplete: true } : {}),
  };
}
