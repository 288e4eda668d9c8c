/**
 * The feature definitions: which entities exist, which features each has, and how a source row
 * becomes feature values. Online materialization (the drain), the reconciliation check and the
 * offline export all use these, so "what a feature means" is written exactly once.
 *
 * Entities and features (Feast vocabulary):
 *   sku            lifecycle                 from shop.skus
 *   sku x fc       available = on_hand - reserved   from shop.inventory
 *   fc             daily_capacity            from shop.fulfillment_centers
 *   fc x day       load = sum(qty) of placed|shipped orders placed that UTC day   from shop.orders
 *   region x fc    rank (1 = nearest)        from shop.region_fc
 */

export type Lifecycle = 'active' | 'paused' | 'discontinued';
export const LIFECYCLES: readonly Lifecycle[] = ['active', 'paused', 'discontinued'];

/** Order statuses that count towards an FC's load for the day the order was placed. */
export const LOAD_STATUSES: ReadonlySet<string> = new Set(['placed', 'shipped']);

/** A null rank sorts after every real rank (SQL: order by rank nulls last). */
export const RANK_NULL = 2_147_483_648;

/** The UTC day of a timestamp as yyyymmdd: FC load is counted per UTC day. */
export function utcDay(at: Date): string {
  const y = at.getUTCFullYear();
  const m = at.getUTCMonth() + 1;
  const d = at.getUTCDate();
  return `${y}${m < 10 ? '0' : ''}${m}${d < 10 ? '0' : ''}${d}`;
}

/**
 * One change to one feature value, with the version that orders it.
 *  - Row-derived features carry `version`: the outbox id of the change. For one source row, ids
 *    follow the true order of its changes, so "higher id wins" is last-writer-wins per row.
 *    `value: null` means the source row is gone (kept as a versioned tombstone in the store so
 *    an older, late change cannot bring it back). `txid` (the writing transaction) decides
 *    against values a backfill wrote from a snapshot: newer iff that snapshot did not see it.
 *  - The load is a sum over many rows, so it changes by deltas. A delta is applied at most once
 *    per counter because the counter remembers the stream position (txid, id) of the last
 *    delta it took, and the drain always applies in that order.
 */
export type FeatureUpdate =
  | {
      feature: 'sku.lifecycle';
      sku: string;
      value: Lifecycle | null;
      version: number;
      txid: string;
      /** An update of an existing SKU: if the store no longer knows the SKU, its stock must be rebuilt. */
      update?: boolean;
    }
  | { feature: 'sku.available'; sku: string; fc: string; value: number | null; version: number; txid: string }
  | { feature: 'fc.capacity'; fc: string; value: number | null; version: number; txid: string }
  | { feature: 'region.rank'; region: string; fc: string; value: number | null; version: number; txid: string }
  | { feature: 'fc.load'; fc: string; day: string; delta: number; txid: string; id: number };
