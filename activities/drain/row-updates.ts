/** A chunk's rows as feature updates, and what could not be applied, as dead letters. */
import type pg from 'pg';
import type { FeatureUpdate } from '../../features/definitions';
import { isTruncate } from '../../capture/source-tables';
import { featureUpdatesFrom, type OutboxRow } from '../../features/from-source';
import { insertDeadLetters } from '../../outbox';
import type { ApplyResult } from '../../store/apply';
import { hold } from '../../store/held';
import type { DrainDeps } from './types';
import type { StoreKeys } from '../../store/keys';

/** The feature updates of a chunk's rows; a row that cannot be turned into updates is a dead letter. */
export function featureUpdatesOf(
  keys: StoreKeys,
  rows: OutboxRow[],
): {
  updates: { update: FeatureUpdate; source: number }[];
  dead: Map<number, string>;
  newestSourceMs: number;
} {
  const updates: { update: FeatureUpdate; source: number }[] = [];
  const dead = new Map<number, string>();
  let newestSourceMs = 0;
  rows.forEach((row, source) => {
    newestSourceMs = Math.max(newestSourceMs, row.created_ms);
    if (isTruncate(row)) return; // applied at the batch's end (truncates.ts); of another table: malformed
    try {
      const mine = featureUpdatesFrom(row);
      // A drain shard applies only its own partitions' SKUs. The outbox routes rows by the same
      // SKU id, so another SKU here is a row written by hand with a key that disagrees with its
      // image: a dead letter, rather than a batch that can never be applied.
      if (keys.partial)
        for (const u of mine)
          if ('sku' in u && !keys.partitions.includes(keys.ofSku(u.sku)))
            throw new Error(
              `row of SKU ${JSON.stringify(u.sku)} (store partition ${keys.ofSku(u.sku).index}) reached a drain shard that does not own it: its key and image disagree`,
            );
      for (const update of mine) updates.push({ update, source });
    } catch (err) {
      dead.set(source, (err as Error).message);
    }
  });
  return { updates, dead, newestSourceMs };
}

/**
 * Rows that could not be turned into updates, and changes Redis rejected, go to the dead letters
 * in the cursor's transaction. Of a change whose operations Redis partly rejected, the rest was
 * applied: the dead letter lists the load counters still owed, so a retry adds exactly those.
 */
export async function deadLetterFailures(
  deps: Pick<DrainDeps, 'redis' | 'keys'>,
  client: pg.PoolClient,
  consumer: string,
  rows: OutboxRow[],
  dead: Map<number, string>,
  applied: ApplyResult,
): Promise<void> {
  for (const f of applied.failures) if (!dead.has(f.source)) dead.set(f.source, f.error);
  if (dead.size === 0) return;
  // held before the commit (and again after it: after-commit.ts), so no waiting letter's change is
  // read as fresh from the store's older value (store/held.ts)
  await hold(
    deps.redis,
    deps.keys,
    [...dead.keys()].map((i) => rows[i]!),
  );
  const pendingLoads = new Map<number, string[]>();
  for (const f of applied.failures)
    if (f.kind === 'loadDelta') pendingLoads.set(f.source, [...(pendingLoads.get(f.source) ?? []), f.key]);
  const partlyApplied = new Set(applied.failures.map((f) => f.source));
  const items = [...dead].map(([i, error]) => ({
    row: rows[i],
    error,
    pendingLoads: partlyApplied.has(i) ? (pendingLoads.get(i) ?? []) : null,
  }));
  await insertDeadLetters(client, consumer, items);
}
