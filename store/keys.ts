/**
 * The online store's Redis layout, in one place (the drain writes it, reads and verify read it).
 *
 *   {p}s:{sku}          hash  # -> lifecycle   {fc} -> available at that FC
 *   {p}f:{fc}           hash  c -> daily capacity
 *   {p}l:{fc}:{yyyymmdd} hash n -> load that UTC day, t/i -> stream position of the last delta
 *   {p}r:{region}       hash  {fc} -> rank
 *   {p}meta             hash  freshness watermark and pipeline bookkeeping
 *   {p}epoch:2          string  present while the store is complete (set by a backfill; gone
 *                              after FLUSHALL or a restart of an empty Redis: that is how data
 *                              loss is noticed)
 *   {p}snaps            hash  k -> "xmin:xmax:xip" of the snapshots backfills read from
 *   {p}pos              hash  the store's own position: the batch claimed last (its snapshots)
 *                             and the last row applied (see store/store-position.ts)
 *   {p}fence            string  "xmin:xmax:xip" of the deletion fence: every deletion the store
 *                              may have forgotten (swept tombstones, expired keys, a rebuild) is
 *                              visible in it (see store/fence.ts)
 *
 * Row-derived fields are stored as "value|version" (see store/field-codec.ts). Small hashes
 * stay in Redis's compact listpack encoding, which keeps a SKU·FC to a few dozen bytes.
 */
export interface StoreKeys {
  prefix: string;
  sku(sku: string): string;
  fc(fc: string): string;
  load(fc: string, day: string): string;
  region(region: string): string;
  meta: string;
  epoch: string;
  /** The epoch key of layout 1 (lifecycle in field "_"). */
  legacyEpoch: string;
  snaps: string;
  snapSeq: string;
  pos: string;
  fence: string;
}

/**
 * The SKU hash's lifecycle field: a name no id can take (ids are letters, digits and . _ : -),
 * so an FC called "_" or "__proto__" has a stock field of its own. (Layout 2; layout 1 used "_".)
 */
export const LIFECYCLE_FIELD = '#';
/** Bumped when the layout changes: a store of another layout is rebuilt (store/layout.ts). */
export const STORE_LAYOUT = 2;
export const CAPACITY_FIELD = 'c';

export function storeKeys(prefix: string): StoreKeys {
  return {
    prefix,
    sku: (sku) => `${prefix}s:${sku}`,
    fc: (fc) => `${prefix}f:${fc}`,
    load: (fc, day) => `${prefix}l:${fc}:${day}`,
    region: (region) => `${prefix}r:${region}`,
    meta: `${prefix}meta`,
    epoch: `${prefix}epoch:${STORE_LAYOUT}`,
    legacyEpoch: `${prefix}epoch`,
    snaps: `${prefix}snaps`,
    snapSeq: `${prefix}snapseq`,
    pos: `${prefix}pos`,
    fence: `${prefix}fence`,
  };
}
