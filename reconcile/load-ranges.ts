/**
 * How far changes of orders made after a verify's snapshot can have moved each load counter.
 *
 * A load is a sum: the store may rightly hold the snapshot's load plus any part of the deltas of
 * orders changed after it (those it has applied so far). So a load difference is explained only
 * when it lies between the sum of those deltas that lower the counter and the sum of those that
 * raise it, for that FC and day. Before, any later order of the FC explained any difference, and a
 * drifted counter of a busy FC was never reported.
 *
 * The deltas come from the drain's own feature definitions (features/from-source.ts), so they are
 * what the drain applies. A change whose deltas cannot be told (a malformed image, a load set
 * re-read from the source, a TRUNCATE of orders) bounds nothing: it explains any difference of
 * its FC, or of every FC when its FC cannot be told either.
 */
import { featureUpdatesFrom } from '../features/from-source';
import type { ChangedRow } from './source-view';

/** The key of a load in a verify report: "fc|yyyymmdd". */
const fcOfLoadKey = (key: string) => key.slice(0, key.lastIndexOf('|'));

/**
 * Whether the changes can explain a load differing by `diff` (store minus source) at `key`.
 * Changes of other tables are ignored.
 */
export function loadDifferenceExplainer(changed: readonly ChangedRow[]): (key: string, diff: number) => boolean {
  const ranges = new Map<string, { down: number; up: number }>();
  const unbounded = new Set<string>();
  let everyFc = false;
  for (const x of changed) {
    if (x.tbl !== 'orders') continue;
    if (x.op === 'T') {
      everyFc = true;
      continue;
    }
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
        if (u.feature === 'fc.loadSet') unbounded.add(u.fc);
        if (u.feature !== 'fc.load') continue;
        const key = `${u.fc}|${u.day}`;
        const range = ranges.get(key) ?? { down: 0, up: 0 };
        if (u.delta > 0) range.up += u.delta;
        else range.down += u.delta;
        ranges.set(key, range);
      }
    } catch {
      const fcs = [x.fc, x.old_fc].filter((fc): fc is string => !!fc);
      if (!fcs.length) everyFc = true;
      for (const fc of fcs) unbounded.add(fc);
    }
  }
  return (key, diff) => {
    if (everyFc || unbounded.has(fcOfLoadKey(key))) return true;
    const range = ranges.get(key);
    return !!range && diff >= range.down && diff <= range.up;
  };
}
