/**
 * The badge read library: `getBadges(region, skus)` answers up to 200 SKUs for one region from
 * Redis in one round trip, with the freshness of what it read. In-process badge engines call it
 * directly; the HTTP API is a thin layer over it. It never touches PostgreSQL.
 *
 * One round trip: a read-only Lua script fetches the region's FCs, each FC's capacity and the
 * day's load, every SKU's fields for those FCs, and the watermark. The rule itself runs here, in
 * TypeScript (features/badge-rule.ts), so there is one definition of it. (A pipelined variant,
 * two round trips, is kept for the benchmark that chose between them.)
 *
 * The script reads keys it derives from the region's FC list, so it assumes one Redis (not
 * Redis Cluster), like the rest of the store.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { Badge, decideBadge, rankRegionFcs, RegionFc } from '../features/badge-rule';
import { utcDay } from '../features/definitions';
import { storedInt, storedLifecycle } from '../store/field-codec';
import { CAPACITY_FIELD, LIFECYCLE_FIELD, storeKeys, StoreKeys } from '../store/keys';

export const MAX_SKUS_PER_CALL = 200;

export interface Freshness {
  /** The time up to which the store is known to hold every committed change (ISO), or null. */
  asOf: string | null;
  /** now - asOf in ms; null when the pipeline never confirmed. */
  lagMs: number | null;
  /** True when the pipeline has not confirmed being caught up within the stale bound. */
  stale: boolean;
}

export interface BadgesAnswer extends Freshness {
  region: string;
  badges: Badge[];
}

export interface BadgeReaderOptions {
  redis: Redis;
  prefix: string;
  /** Answers are stale when the last caught-up confirmation is older than this. */
  staleAfterMs: number;
  /** Injected clock (tests); Date.now by default. */
  now?: () => number;
  mode?: 'lua' | 'pipeline';
}

const READ_LUA = `
local p, day = ARGV[1], ARGV[2]
local region = redis.call('HGETALL', p .. 'r:' .. ARGV[3])
local fcs = {}
for i = 1, #region, 2 do fcs[#fcs + 1] = region[i] end
local fcinfo = {}
for _, fc in ipairs(fcs) do
  fcinfo[#fcinfo + 1] = redis.call('HGET', p .. 'f:' .. fc, 'c') or ''
  fcinfo[#fcinfo + 1] = redis.call('HGET', p .. 'l:' .. fc .. ':' .. day, 'n') or ''
end
local out = { region, fcinfo, redis.call('HMGET', p .. 'meta', 'caughtUpAt') }
for i = 4, #ARGV do
  out[#out + 1] = redis.call('HMGET', p .. 's:' .. ARGV[i], '${LIFECYCLE_FIELD}', unpack(fcs))
end
return out
`;

type ReadReply = [string[], string[], (string | null)[], ...(string | null)[][]];
type WithRead = Redis & { fbReadBadges(numKeys: number, ...args: string[]): Promise<ReadReply> };
const READ_SHA = createHash('sha1').update(READ_LUA).digest('hex');

export class RedisUnavailable extends Error {
  override name = 'RedisUnavailable';
}

export function createBadgeReader(opts: BadgeReaderOptions) {
  const keys: StoreKeys = storeKeys(opts.prefix);
  const now = opts.now ?? Date.now;
  const redis = opts.redis as WithRead;
  if (typeof redis.fbReadBadges !== 'function') opts.redis.defineCommand('fbReadBadges', { lua: READ_LUA });

  /**
   * The read script runs as EVALSHA_RO (EVAL_RO when the server does not have it cached yet), so
   * a Redis ACL user that may only read (README, Redis users) serves the API; a server older than
   * Redis 7 (no _RO variants) gets plain EVALSHA.
   */
  let readOnlyScripts = true;
  async function runRead(args: string[]): Promise<ReadReply> {
    if (readOnlyScripts) {
      try {
        return (await opts.redis.evalsha_ro(READ_SHA, 0, ...args)) as ReadReply;
      } catch (err) {
        const message = (err as Error).message ?? '';
        if (message.startsWith('NOSCRIPT')) return (await opts.redis.eval_ro(READ_LUA, 0, ...args)) as ReadReply;
        if (!/unknown command/i.test(message)) throw err;
        readOnlyScripts = false;
      }
    }
    return redis.fbReadBadges(0, ...args);
  }

  function freshness(caughtUpRaw: string | null | undefined, at: number): Freshness {
    const caughtUpAt = caughtUpRaw ? Number(caughtUpRaw) : null;
    if (caughtUpAt === null || !Number.isFinite(caughtUpAt)) return { asOf: null, lagMs: null, stale: true };
    const lagMs = Math.max(0, at - caughtUpAt);
    return { asOf: new Date(caughtUpAt).toISOString(), lagMs, stale: lagMs > opts.staleAfterMs };
  }

  /**
   * The region's FCs from its hash as Redis returned it (a flat [fc, value, ...] list), with each
   * FC's capacity and load at the same index. Kept as arrays in Redis's order: a JavaScript object
   * would reorder integer-like ids ("2" before "10") and give `__proto__` special meaning.
   */
  function regionFcs(
    flatRegion: string[],
    info: (i: number) => [string | null, string | null],
  ): { ranked: RegionFc[]; order: string[] } {
    const order: string[] = [];
    const out: RegionFc[] = [];
    for (let i = 0; i < flatRegion.length; i += 2) {
      const fc = flatRegion[i];
      order.push(fc);
      const rank = storedInt(flatRegion[i + 1]);
      if (rank === null) continue; // tombstone: the FC no longer serves the region
      const [capacity, load] = info(i / 2);
      out.push({ fc, rank, capacity: storedInt(capacity), load: load ? Number(load) : 0 });
    }
    return { ranked: rankRegionFcs(out), order };
  }

  function badgesFrom(skus: string[], order: string[], ranked: RegionFc[], skuFields: (string | null)[][]): Badge[] {
    // Field 0 is the lifecycle, field i + 1 the stock at order[i].
    const position = new Map(order.map((fc, i) => [fc, i + 1]));
    return skus.map((sku, n) => {
      const fields = skuFields[n];
      return decideBadge(
        sku,
        { lifecycle: storedLifecycle(fields[0]), available: (fc) => storedInt(fields[position.get(fc)!]) },
        ranked,
      );
    });
  }

  async function readLua(region: string, skus: string[], at: number) {
    const reply = await runRead([opts.prefix, utcDay(new Date(at)), region, ...skus]);
    const [flatRegion, fcinfo, [caughtUp], ...skuFields] = reply;
    const { ranked, order } = regionFcs(flatRegion, (i) => [fcinfo[2 * i] || null, fcinfo[2 * i + 1] || null]);
    return { badges: badgesFrom(skus, order, ranked, skuFields), caughtUp };
  }

  async function readPipeline(region: string, skus: string[], at: number) {
    // HGETALL through `call`: the flat reply, in Redis's order (hgetall() would build an object).
    const flatRegion = (await opts.redis.call('HGETALL', keys.region(region))) as string[];
    const order = flatRegion.filter((_, i) => i % 2 === 0);
    const p = opts.redis.pipeline();
    const day = utcDay(new Date(at));
    for (const fc of order) {
      p.hget(keys.fc(fc), CAPACITY_FIELD);
      p.hget(keys.load(fc, day), 'n');
    }
    p.hget(keys.meta, 'caughtUpAt');
    for (const sku of skus) p.hmget(keys.sku(sku), LIFECYCLE_FIELD, ...order);
    const res = ((await p.exec()) ?? []).map(([err, v]) => {
      if (err) throw err;
      return v;
    });
    const { ranked } = regionFcs(flatRegion, (i) => [res[2 * i] as string | null, res[2 * i + 1] as string | null]);
    const caughtUp = res[2 * order.length] as string | null;
    const skuFields = skus.map((_, n) => res[2 * order.length + 1 + n] as (string | null)[]);
    return { badges: badgesFrom(skus, order, ranked, skuFields), caughtUp };
  }

  const read = opts.mode === 'pipeline' ? readPipeline : readLua;

  return {
    /** Badges for up to 200 SKUs of one region, in the order asked. */
    async getBadges(region: string, skus: string[]): Promise<BadgesAnswer> {
      if (skus.length > MAX_SKUS_PER_CALL)
        throw new RangeError(`at most ${MAX_SKUS_PER_CALL} SKUs per call, got ${skus.length}`);
      const at = now();
      let r: { badges: Badge[]; caughtUp: string | null | undefined };
      try {
        r = await read(region, skus, at);
      } catch (err) {
        throw new RedisUnavailable(`online store unavailable: ${(err as Error).message}`);
      }
      return { region, ...freshness(r.caughtUp, at), badges: r.badges };
    },
    async getBadge(region: string, sku: string): Promise<Badge & Freshness> {
      const a = await this.getBadges(region, [sku]);
      return { ...a.badges[0], stale: a.stale, lagMs: a.lagMs, asOf: a.asOf };
    },
    async freshness(): Promise<Freshness> {
      try {
        return freshness(await opts.redis.hget(keys.meta, 'caughtUpAt'), now());
      } catch (err) {
        throw new RedisUnavailable(`online store unavailable: ${(err as Error).message}`);
      }
    },
  };
}

export type BadgeReader = ReturnType<typeof createBadgeReader>;
