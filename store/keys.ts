/**
 * The online store's Redis layout, in one place (the drain writes it, reads and verify read it).
 *
 * The store is split into STORE_PARTITIONS partitions (1 on a single Redis, 16 by default on a
 * Redis Cluster). A partition is one hash slot: every key of it carries the partition's hash tag,
 * so every Lua call the store makes touches one slot, as Redis Cluster requires. Each partition is
 * a complete small store of its own, with keys under its prefix {pp} ("{p}" itself on a store of
 * one partition, "{p}{tag}" otherwise):
 *
 *   {pp}s:{sku}          hash  # -> lifecycle   {fc} -> available at that FC  (the SKUs hashed here)
 *   {pp}f:{fc}           hash  c -> daily capacity                              (every FC: a copy)
 *   {pp}l:{fc}:{yyyymmdd} hash n -> load that UTC day, t/i -> stream position   (every FC: a copy)
 *   {pp}r:{region}       hash  {fc} -> rank                                    (every region: a copy)
 *   {pp}loads            zset  the partition's load counter keys, scored by their expiry
 *   {pp}loadbase         hash  as of which position the last refill of the loads found every counter
 *                             it did not name at 0 (store/lua/apply.lua, op Z)
 *   {pp}meta             hash  freshness watermark and pipeline bookkeeping
 *   {pp}epoch:2          string  present while the partition is complete (set by a backfill; gone
 *                              after FLUSHALL or a restart of an empty Redis: that is how data
 *                              loss is noticed)
 *   {pp}snaps            hash  k -> "xmin:xmax:xip" of the snapshots backfills read from (k from
 *                             {p}snapseq, which numbers them for the whole store)
 *   {pp}pos              hash  the partition's own position: the batch claimed last (its snapshots),
 *                             the last row applied and what its chunk delivered (store/store-position.ts)
 *   {pp}fence            string  "xmin:xmax:xip" of the deletion fence (see store/fence.ts)
 *   {pp}rebuilds         set   SKUs whose stock must be rebuilt (store/rebuild-requests.ts)
 *   {pp}held             hash  subjects waiting dead letters hold back from fresh answers
 *                             (store/held.ts): s:<sku>, f:<fc>, r:<region>, all -> ms held
 *   {pp}backfill         string  the id of the backfill filling the partition
 *   {pp}backfill-step    string  the last step of it whose writes the partition holds
 *
 * Why FC capacity, region ranks and loads are copied into every partition: a badge read needs
 * them beside the SKU's stock, and a copy in the SKU's own slot is read in the same Lua call (one
 * round trip per node, never a second serial one), and is written and replicated in the same
 * stream as the SKU data and the partition's watermark, so after a failover or a restart from an
 * old file it is never staler than the SKU data it is read with. They are small (one hash per FC,
 * per region, per FC-day), so the copies cost little memory; the drain writes each change once
 * per partition.
 *
 * Row-derived fields are stored as "value|version" (see store/field-codec.ts). Small hashes
 * stay in Redis's compact listpack encoding, which keeps a SKU·FC to a few dozen bytes.
 */
import calculateSlot from 'cluster-key-slot';
import type { Config } from '../config';
import { FIELD, KEY, STORE_LAYOUT } from './names';

/** The keys of one partition (one hash slot). */
export interface PartitionKeys {
  index: number;
  /** The install's prefix plus the partition's hash tag ("{p}" alone for a store of one partition). */
  prefix: string;
  sku(sku: string): string;
  fc(fc: string): string;
  load(fc: string, day: string): string;
  region(region: string): string;
  meta: string;
  epoch: string;
  snaps: string;
  pos: string;
  fence: string;
  rebuilds: string;
  /** What waiting dead letters hold back from fresh answers (store/held.ts). */
  held: string;
  /** The id of the backfill filling this partition: gone with the partition if it is rebuilt meanwhile. */
  backfill: string;
  /** The last step (chunk, loads) of that backfill whose writes the partition holds. */
  backfillStep: string;
  /** Every load counter key of the partition, scored by its expiry: what a refill of the loads zeroes. */
  loadIndex: string;
}

/** The whole store: its partitions and how a SKU finds its own. */
export interface StoreKeys {
  /** REDIS_PREFIX: every key of the store starts with it. */
  prefix: string;
  partitions: readonly PartitionKeys[];
  /** How many partitions the whole store has (a drain shard's view holds some of them). */
  count: number;
  /** The partition that holds a SKU's hash. */
  ofSku(sku: string): PartitionKeys;
  /** The SKU's hash key (in its partition). */
  sku(sku: string): string;
  /** The partition a key of this store belongs to (by its hash tag). */
  ofKey(key: string): PartitionKeys;
  /** How many partitions the store was built with, in a key outside every partition. */
  partitionCount: string;
  /**
   * The counter that numbers backfill snapshots, outside every partition: a partition rebuilt
   * alone must not hand out a number the others still use for another snapshot.
   */
  snapSeq: string;
  /** The epoch key of layout 1 (lifecycle in field "_"). */
  legacyEpoch: string;
  /** A SCAN pattern for one kind of key (s SKU, f FC, l load, r region) in every partition. */
  pattern(kind: 's' | 'f' | 'l' | 'r'): string;
  /**
   * Set on a drain shard's view of the store (outbox/shards.ts): `partitions` are the shard's own,
   * a subset; whole-store work (a rebuild) then touches those alone.
   */
  partial?: boolean;
}

/**
 * The SKU hash's lifecycle field: a name no id can take (ids are letters, digits and . _ : -),
 * so an FC called "_" or "__proto__" has a stock field of its own. (Layout 2; layout 1 used "_".)
 */
export const LIFECYCLE_FIELD = FIELD.lifecycle;
export const CAPACITY_FIELD = FIELD.capacity;
export { STORE_LAYOUT };
export const MAX_STORE_PARTITIONS = 1024;
const SLOTS = 16384;

/**
 * FNV-1a (32 bit) of the id's UTF-8 bytes: a stable, fast hash of a SKU id, the same in every
 * process and in PostgreSQL (pipeline.sku_route, migration 008, routes outbox rows to drain shards
 * by it). Ids are ASCII by contract; any other id hashes its UTF-8 bytes too, as PostgreSQL does.
 */
export function skuHash(sku: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < sku.length; i++) {
    const c = sku.charCodeAt(i);
    if (c > 0x7f) return utf8Hash(sku);
    h ^= c;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function utf8Hash(sku: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(sku, 'utf8')) {
    h ^= b;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * The hash tag of each partition: the shortest tag whose slot falls in the partition's share of
 * the 16384 slots, so partitions are spread evenly over a cluster's masters (which own
 * contiguous slot ranges), whatever the number of masters.
 */
export function partitionTags(count: number): string[] {
  const tags: string[] = [];
  for (let n = 0; n < count; n++) {
    const lo = Math.floor((n * SLOTS) / count);
    const hi = Math.floor(((n + 1) * SLOTS) / count);
    for (let k = 0; ; k++) {
      const tag = k.toString(36);
      const slot = calculateSlot(tag);
      if (slot >= lo && slot < hi) {
        tags.push(tag);
        break;
      }
    }
  }
  return tags;
}

function partitionKeys(index: number, prefix: string): PartitionKeys {
  return {
    index,
    prefix,
    sku: (sku) => `${prefix}${KEY.sku}${sku}`,
    fc: (fc) => `${prefix}${KEY.fc}${fc}`,
    load: (fc, day) => `${prefix}${KEY.load}${fc}:${day}`,
    region: (region) => `${prefix}${KEY.region}${region}`,
    meta: `${prefix}${KEY.meta}`,
    epoch: `${prefix}${KEY.epoch}`,
    snaps: `${prefix}${KEY.snaps}`,
    pos: `${prefix}${KEY.pos}`,
    fence: `${prefix}${KEY.fence}`,
    rebuilds: `${prefix}${KEY.rebuilds}`,
    held: `${prefix}${KEY.held}`,
    backfill: `${prefix}${KEY.backfill}`,
    backfillStep: `${prefix}${KEY.backfillStep}`,
    loadIndex: `${prefix}${KEY.loadIndex}`,
  };
}

const cache = new Map<string, StoreKeys>();

export function storeKeys(prefix: string, partitions = 1): StoreKeys {
  if (!Number.isInteger(partitions) || partitions < 1 || partitions > MAX_STORE_PARTITIONS)
    throw new RangeError(`store partitions must be an integer from 1 to ${MAX_STORE_PARTITIONS}, got ${partitions}`);
  const id = `${prefix}\u0000${partitions}`;
  const known = cache.get(id);
  if (known) return known;
  // One partition: no hash tag, the layout a single Redis always had.
  const parts =
    partitions === 1
      ? [partitionKeys(0, prefix)]
      : partitionTags(partitions).map((tag, n) => partitionKeys(n, `${prefix}{${tag}}`));
  const byTag = new Map(parts.map((p) => [p.prefix, p]));
  const ofSku = (sku: string) => (partitions === 1 ? parts[0] : parts[skuHash(sku) % partitions]);
  const keys: StoreKeys = {
    prefix,
    partitions: parts,
    count: partitions,
    ofSku,
    sku: (sku) => ofSku(sku).sku(sku),
    ofKey(key) {
      if (partitions === 1) return parts[0];
      const close = key.indexOf('}', prefix.length);
      const found = close > 0 ? byTag.get(key.slice(0, close + 1)) : undefined;
      if (!found) throw new Error(`key ${key} belongs to no partition of store '${prefix}'`);
      return found;
    },
    partitionCount: `${prefix}partitions`,
    snapSeq: `${prefix}snapseq`,
    legacyEpoch: `${prefix}epoch`,
    // ids never hold braces, so "{*}" matches exactly a partition's tag
    pattern: (kind) => (partitions === 1 ? `${prefix}${kind}:*` : `${prefix}{*}${kind}:*`),
  };
  cache.set(id, keys);
  return keys;
}

/** The SKU id of a SKU hash key of this store. */
export function skuOfKey(keys: StoreKeys, key: string): string {
  return key.slice(keys.ofKey(key).prefix.length + KEY.sku.length);
}

/** The store as the configuration describes it (REDIS_PREFIX, STORE_PARTITIONS). */
export const storeKeysFor = (config: Pick<Config, 'REDIS_PREFIX' | 'STORE_PARTITIONS'>): StoreKeys =>
  storeKeys(config.REDIS_PREFIX, config.STORE_PARTITIONS);
