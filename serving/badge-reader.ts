/**
 * The badge read library: `getBadges(region, skus)` answers up to 200 SKUs for one region from
 * Redis in one round trip per node, with the freshness of what it read. In-process badge engines
 * call it directly; the HTTP API is a thin layer over it. It never touches PostgreSQL.
 *
 * One script call per store partition that holds some of the SKUs (store/keys.ts), the calls of
 * one node in one pipeline, all nodes in parallel: a read-only Lua script
 * (store/lua/read-badges.lua) fetches the region's FCs,
 * each FC's capacity and the day's load, every SKU's fields for those FCs, and the watermark, all
 * from the partition's own slot. FC capacity, region ranks and loads come from the partition's
 * copy, written and replicated with its SKU data, so they are never staler than the SKU data they
 * are read with, and the answer is as fresh as the least fresh partition it read. The rule itself
 * runs here, in TypeScript (features/badge-rule.ts), so there is one definition of it.
 *
 * The same script call that reads the data also checks the partition's epoch: a rebuild deletes
 * the epoch before any other key (store/rebuild.ts) and a backfill sets it only when the partition
 * is whole again, so a read can never take a half-emptied or half-refilled partition for fresh,
 * whatever order its keys disappear in.
 */
import { Badge, decideBadge, rankRegionFcs, RegionFc } from '../features/badge-rule';
import { utcDay } from '../features/definitions';
import { storedInt, storedLifecycle } from '../store/field-codec';
import { partitionLagMs } from '../store/watermark';
import { PartitionKeys, storeKeys, StoreKeys } from '../store/keys';
import type { StoreRedis } from '../store/redis-client';
import { ReadScript, type ReadReply } from './read-script';

export const MAX_SKUS_PER_CALL = 200;

export interface Freshness {
  /**
   * The time up to which the store is known to hold every committed change (ISO), or null: this
   * host's now less lagMs, so never in its future (a pipeline database clock running ahead stamps
   * the watermark late).
   */
  asOf: string | null;
  /**
   * How long ago asOf was, in ms: the larger of the lag measured on the Redis server's clock
   * (store/watermark.ts) and this host's now less the watermark's time. Null when the pipeline
   * never confirmed.
   */
  lagMs: number | null;
  /** True when the pipeline has not confirmed being caught up within the stale bound. */
  stale: boolean;
}

export interface BadgesAnswer extends Freshness {
  region: string;
  badges: Badge[];
}

export interface BadgeReaderOptions {
  redis: StoreRedis;
  prefix: string;
  /** STORE_PARTITIONS: how the store is split (store/keys.ts). */
  partitions: number;
  /** Answers are stale when the last caught-up confirmation is older than this. */
  staleAfterMs: number;
  /** Injected clock (tests); Date.now by default. */
  now?: () => number;
}

/** What one partition's watermark says: the time it vouches for (asOf), and how long ago that was. */
interface Confirmation {
  at: number;
  lagMs: number;
}

/**
 * A partition's confirmation from the read script's [caughtUpAt, partitions, caughtUpClock, TIME].
 * The lag is TIME minus caughtUpClock, both the Redis server's clock (store/watermark.ts), so a
 * pipeline database or API host whose clock runs ahead cannot make it shorter; and at least this
 * host's now minus asOf, the lag as measured before, which covers what the Redis clock alone
 * cannot: a write that waited long to run (TIME is read as it runs, the age when it was sent),
 * and a replica promoted with a clock behind its old primary's. Either alone errs only with a
 * clock that is off; their maximum needs both to err. A watermark without caughtUpClock (written
 * by a drain from before it) is not a confirmation: one pass of the current drain writes it.
 *
 * `loadDay`, the UTC day whose FC loads the read counted (this host's): when the Redis server's
 * clock is already, or still, in another day, the two clocks disagree across a midnight, and the
 * day's counter read may not be today's (a full FC read from the next day's empty counter looks
 * free). The lag alone would not show it with this host's clock behind, so the read is stale.
 */
function confirmationOf(
  [caughtUpRaw, , clockRaw, timeMs]: ReadReply[2],
  hostNow: number,
  sameLayoutAsReader: boolean,
  loadDay?: string,
): Confirmation | null {
  if (!sameLayoutAsReader || !caughtUpRaw) return null;
  if (loadDay !== undefined && utcDay(new Date(Number(timeMs))) !== loadDay) return null;
  const lagMs = partitionLagMs(Number(caughtUpRaw), clockRaw ? Number(clockRaw) : null, Number(timeMs), hostNow);
  // asOf is this host's now less that lag: never later than caughtUpAt (the lag is at least
  // hostNow - caughtUpAt), and earlier when the pipeline database's clock, which stamps
  // caughtUpAt, runs ahead. A caughtUpAt in this host's future would claim changes committed up
  // to a time no snapshot covered; and lagMs is now - asOf, as the contract says.
  return lagMs === null ? null : { at: hostNow - lagMs, lagMs };
}

/** The least fresh of the partitions read; unknown when any partition never confirmed. */
function leastFresh(confirmed: (Confirmation | null)[]): Confirmation | null {
  if (confirmed.length === 0 || confirmed.some((v) => !v)) return null;
  return {
    at: Math.min(...confirmed.map((c) => c!.at)),
    lagMs: Math.max(...confirmed.map((c) => c!.lagMs)),
  };
}

export class RedisUnavailable extends Error {
  override name = 'RedisUnavailable';
}

/**
 * The drain records in every partition how many partitions it writes (store/watermark.ts). A
 * reader configured with another STORE_PARTITIONS hashes SKUs elsewhere: its answers are not the
 * drain's, so they never claim to be fresh. (A store from before partitions has one.)
 */
const sameLayout = (keys: StoreKeys, parts: string | null | undefined) =>
  (parts ?? '1') === String(keys.partitions.length);

function freshnessOf(c: Confirmation | null, staleAfterMs: number): Freshness {
  if (c === null) return { asOf: null, lagMs: null, stale: true };
  return { asOf: new Date(c.at).toISOString(), lagMs: c.lagMs, stale: c.lagMs > staleAfterMs };
}

/**
 * The region's FCs from its hash as Redis returned it (a flat [fc, value, ...] list), with each
 * FC's capacity and load at the same index. Kept as arrays in Redis's order: a JavaScript object
 * would reorder integer-like ids ("2" before "10") and give `__proto__` special meaning.
 */
function regionFcs(flatRegion: string[], fcinfo: string[]): { ranked: RegionFc[]; order: string[] } {
  const order: string[] = [];
  const out: RegionFc[] = [];
  for (let i = 0; i < flatRegion.length; i += 2) {
    const fc = flatRegion[i];
    order.push(fc);
    const rank = storedInt(flatRegion[i + 1]);
    if (rank === null) continue; // tombstone: the FC no longer serves the region
    const capacity = fcinfo[i] || null;
    const load = fcinfo[i + 1] || null;
    out.push({ fc, rank, capacity: storedInt(capacity), load: load ? Number(load) : 0 });
  }
  return { ranked: rankRegionFcs(out), order };
}

/**
 * The rule over each SKU's fields: field 0 is the lifecycle, field i + 1 the stock at order[i], the
 * last 1 while the SKU's stock is being rebuilt. Such a SKU is answered as unknown: the stock the
 * store has for it (none, after its key expired) is not the source's, and the rest of the answer
 * is as fresh as ever.
 */
function badgesFrom(
  skus: string[],
  order: string[],
  ranked: RegionFc[],
  skuFields: (string | number | null)[][],
): Badge[] {
  const position = new Map(order.map((fc, i) => [fc, i + 1]));
  return skus.map((sku, n) => {
    const fields = skuFields[n] as (string | null)[];
    const rebuilding = Number(skuFields[n][order.length + 1]) === 1;
    return decideBadge(
      sku,
      {
        lifecycle: rebuilding ? null : storedLifecycle(fields[0]),
        available: (fc) => storedInt(fields[position.get(fc)!]),
      },
      ranked,
    );
  });
}

/** The asked SKUs' indexes by the partition that holds them (one partition when none is asked: the freshness). */
function byPartition(keys: StoreKeys, skus: string[]): [PartitionKeys, number[]][] {
  const groups = new Map<PartitionKeys, number[]>();
  skus.forEach((sku, i) => {
    const p = keys.ofSku(sku);
    const list = groups.get(p);
    if (list) list.push(i);
    else groups.set(p, [i]);
  });
  if (groups.size === 0) groups.set(keys.partitions[0], []);
  return [...groups];
}

/** One read: every partition that holds some of the SKUs, one script call each; badges in the order asked. */
async function readBadges(script: ReadScript, keys: StoreKeys, region: string, skus: string[], at: number) {
  const day = utcDay(new Date(at));
  const groups = byPartition(keys, skus);
  const replies = await script.run(
    groups.map(([partition, idx]) => ({
      partition,
      args: [partition.prefix, day, region, ...idx.map((i) => skus[i])],
    })),
  );
  const badges: Badge[] = new Array(skus.length);
  const confirmed: (Confirmation | null)[] = [];
  const regions: RegionFc[][] = [];
  replies.forEach(([flatRegion, fcinfo, meta, ...skuFields], g) => {
    const { ranked, order } = regionFcs(flatRegion, fcinfo);
    regions.push(ranked);
    const idx = groups[g][1];
    const answered = badgesFrom(
      idx.map((i) => skus[i]),
      order,
      ranked,
      skuFields,
    );
    answered.forEach((b, n) => (badges[idx[n]] = b));
    confirmed.push(confirmationOf(meta, at, sameLayout(keys, meta[1]), day));
  });
  return { badges, caughtUp: leastFresh(confirmed), regions };
}

async function orUnavailable<T>(read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (err) {
    throw new RedisUnavailable(`online store unavailable: ${(err as Error).message}`);
  }
}

export function createBadgeReader(opts: BadgeReaderOptions) {
  const keys: StoreKeys = storeKeys(opts.prefix, opts.partitions);
  const now = opts.now ?? Date.now;
  const script = new ReadScript(opts.redis);
  return {
    /** Badges for up to 200 SKUs of one region, in the order asked. */
    async getBadges(region: string, skus: string[]): Promise<BadgesAnswer> {
      if (skus.length > MAX_SKUS_PER_CALL)
        throw new RangeError(`at most ${MAX_SKUS_PER_CALL} SKUs per call, got ${skus.length}`);
      const at = now();
      const r = await orUnavailable(() => readBadges(script, keys, region, skus, at));
      return { region, ...freshnessOf(r.caughtUp, opts.staleAfterMs), badges: r.badges };
    },
    async getBadge(region: string, sku: string): Promise<Badge & Freshness> {
      const a = await this.getBadges(region, [sku]);
      return { ...a.badges[0], stale: a.stale, lagMs: a.lagMs, asOf: a.asOf };
    },
    /**
     * One SKU's badge with the region's FCs (rank, capacity, load of the day) as the same read
     * found them in the SKU's partition, in rule order: what the rule decided over (verify).
     */
    async badgeWithRegion(region: string, sku: string): Promise<{ badge: Badge; fcs: RegionFc[] }> {
      const r = await orUnavailable(() => readBadges(script, keys, region, [sku], now()));
      return { badge: r.badges[0]!, fcs: r.regions[0]! };
    },
    /** The whole store's freshness: the read script's watermark and epoch check in every partition. */
    async freshness(): Promise<Freshness> {
      const replies = await orUnavailable(() =>
        script.run(keys.partitions.map((partition) => ({ partition, args: [partition.prefix, '', ''] }))),
      );
      const at = now();
      const values = replies.map(([, , meta]) => confirmationOf(meta, at, sameLayout(keys, meta[1])));
      return freshnessOf(leastFresh(values), opts.staleAfterMs);
    },
  };
}

export type BadgeReader = ReturnType<typeof createBadgeReader>;
