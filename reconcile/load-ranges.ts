/**
 * What changes of orders made after a verify's view did to the load counters.
 *
 * A load is a sum: the store holds the view's load plus the deltas of the later orders it has
 * applied. Of those later changes, the ones every drain shard had applied before the store was read
 * again (visible in the drain's applied snapshot, read just before) are in it for certain: their
 * deltas are counted exactly. The ones committed by the end of that read and not certainly applied
 * may or may not be in it: they give a range, the sum of their deltas that lower the counter to the
 * sum of those that raise it. Later ones cannot be in it. So a load difference is explained only
 * when, less the certain deltas, it lies in that range, for that FC and day. (Before, any later
 * order of the FC explained any difference, and a drifted counter of a busy FC was never reported;
 * a range over every change since the view would still hide any drift smaller than a long run's
 * orders.)
 *
 * The deltas come from the drain's own feature definitions (features/from-source.ts), so they are
 * what the drain applies. A change whose deltas cannot be told (a malformed image, a load set
 * re-read from the source, a TRUNCATE of orders) bounds nothing: it explains any difference of
 * its FC, or of every FC when its FC cannot be told either.
 */
import { featureUpdatesFrom } from '../features/from-source';
import { type PgSnapshot, visibleIn } from '../db/pg-snapshot';
import type { ChangedRow } from './source-view';

/** The key of a load in a verify report: "fc|yyyymmdd". */
export const fcOfLoadKey = (key: string) => key.slice(0, key.lastIndexOf('|'));

/**
 * Where the store may be in the later changes, as snapshots of the outbox's database: `applied`,
 * seen by every drain shard's applied snapshot before the store was read again (in it for certain);
 * `present`, taken after that read (a change it does not see cannot be in it). Unknown: every
 * change may or may not be in it.
 */
export interface StoreReach {
  applied: PgSnapshot;
  present: PgSnapshot;
  /**
   * Changes this snapshot sees may or may not be in the view already (capture from the WAL: the
   * outbox rows written between the pipeline snapshot taken before the sources' and the one taken
   * once they were captured up to the view, reconcile/source-view.ts): in the range, whatever the
   * drain applied. Null: none.
   */
  viewMaybe: PgSnapshot | null;
}

export interface LaterOrderLoads {
  /** Can the changes explain the store's load at `key` differing by `diff` (store minus source)? */
  explains(key: string, diff: number): boolean;
}

export function laterOrderLoads(changed: readonly ChangedRow[], reach: StoreReach | null = null): LaterOrderLoads {
  const certain = new Map<string, number>();
  const ranges = new Map<string, { down: number; up: number }>();
  const unbounded = new Set<string>();
  let everyFc = false;
  for (const x of changed) {
    if (x.tbl !== 'orders') continue;
    if (x.op === 'T') {
      everyFc = true;
      continue;
    }
    const where = reach === null ? 'maybe' : placeOf(BigInt(x.txid), reach);
    try {
      const updates = featureUpdatesFrom({
        id: x.id,
        txid: x.txid,
        tbl: x.tbl,
        op: x.op,
        key: x.key,
        image: x.image,
        old_image: x.old_image,
        created_ms: 0,
      });
      for (const u of updates) {
        // a refill's completeness zeroes counters of any FC (unless it cannot be in the store yet)
        const completes =
          u.feature === 'fc.loadsComplete' || (u.feature === 'fc.loadSet' && u.completeFrom !== undefined);
        if (completes && where !== 'absent') everyFc = true;
        if (u.feature === 'fc.loadSet') unbounded.add(u.fc);
        if (u.feature !== 'fc.load') continue;
        const key = `${u.fc}|${u.day}`;
        if (where === 'applied') certain.set(key, (certain.get(key) ?? 0) + u.delta);
        else if (where === 'maybe') {
          const range = ranges.get(key) ?? { down: 0, up: 0 };
          if (u.delta > 0) range.up += u.delta;
          else range.down += u.delta;
          ranges.set(key, range);
        }
      }
    } catch {
      const fcs = [x.fc, x.old_fc].filter((fc): fc is string => !!fc);
      if (!fcs.length) everyFc = true;
      for (const fc of fcs) unbounded.add(fc);
    }
  }
  return {
    explains(key, diff) {
      if (everyFc || unbounded.has(fcOfLoadKey(key))) return true;
      const rest = diff - (certain.get(key) ?? 0);
      const range = ranges.get(key) ?? { down: 0, up: 0 };
      return rest >= range.down && rest <= range.up;
    },
  };
}

function placeOf(txid: bigint, reach: StoreReach): 'applied' | 'maybe' | 'absent' {
  if (reach.viewMaybe && visibleIn(reach.viewMaybe, txid)) return 'maybe';
  if (visibleIn(reach.applied, txid)) return 'applied';
  return visibleIn(reach.present, txid) ? 'maybe' : 'absent';
}
