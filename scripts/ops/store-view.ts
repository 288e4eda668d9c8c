/**
 * What the online store holds for one SKU and one region, decoded for a person (`ops inspect`,
 * `ops explain`): values and their versions instead of the stored "value|version" text
 * (store/field-codec.ts), and TTLs in words instead of Redis's -1 / -2 codes. Read from the SKU's
 * own partition, as the read path reads it (store/keys.ts).
 */
import type { RegionFc } from '../../features/badge-rule';
import type { Lifecycle } from '../../features/definitions';
import { storedInt, storedLifecycle, storedVersion, TOMBSTONE } from '../../store/field-codec';
import { CAPACITY_FIELD, LIFECYCLE_FIELD, type StoreKeys } from '../../store/keys';
import { FIELD } from '../../store/names';
import type { StoreRedis } from '../../store/redis-client';

/** A key's time to live: Redis answers -2 (no such key), -1 (no expiry) or seconds. */
export interface Ttl {
  state: 'key absent' | 'no TTL' | 'expires';
  seconds: number | null;
  text: string;
}

export function describeTtl(redisTtl: number): Ttl {
  if (redisTtl === -2) return { state: 'key absent', seconds: null, text: 'key absent' };
  if (redisTtl < 0) return { state: 'no TTL', seconds: null, text: 'no TTL (kept until deleted)' };
  return { state: 'expires', seconds: redisTtl, text: `expires in ${duration(redisTtl)}` };
}

function duration(s: number): string {
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3_600);
  const m = Math.floor((s % 3_600) / 60);
  const parts = [d && `${d}d`, h && `${h}h`, m && `${m}m`, !d && !h && `${s % 60}s`].filter(Boolean);
  return parts.join(' ');
}

/**
 * One stored field: its value (null for a tombstone: the source row is gone) and version: the
 * change's position (a number), or the tag of the backfill snapshot that filled it ("s3").
 */
export interface StoredField<T> {
  value: T | null;
  version: number | string | null;
  tombstone: boolean;
}

const versionOf = (raw: string): number | string | null => {
  const tag = raw.slice(raw.indexOf('|') + 1);
  return raw.includes('|') && tag.startsWith('s') ? tag : storedVersion(raw);
};

const field = <T>(raw: string, decode: (raw: string) => T | null): StoredField<T> => ({
  value: decode(raw),
  version: versionOf(raw),
  tombstone: raw.split('|')[0] === TOMBSTONE,
});

export interface StoreSku {
  ttl: Ttl;
  lifecycle: StoredField<Lifecycle> | null;
  /** Available units per FC the store has a field for, in FC id order. */
  stock: ({ fc: string } & StoredField<number>)[];
}

export async function readStoreSku(redis: StoreRedis, keys: StoreKeys, sku: string): Promise<StoreSku> {
  const key = keys.sku(sku);
  const [fields, ttl] = await Promise.all([redis.hgetall(key), redis.ttl(key)]);
  const stock = Object.entries(fields)
    .filter(([f]) => f !== LIFECYCLE_FIELD)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([fc, raw]) => ({ fc, ...field(raw, storedInt) }));
  const lifecycle = fields[LIFECYCLE_FIELD];
  return {
    ttl: describeTtl(ttl),
    lifecycle: lifecycle === undefined ? null : field(lifecycle, storedLifecycle),
    stock,
  };
}

/**
 * The region's FCs as the SKU's partition holds them (the copy its badge is read with): rank,
 * capacity and the UTC day's load. An FC whose rank is a tombstone no longer serves the region.
 */
export async function readStoreRegion(
  redis: StoreRedis,
  keys: StoreKeys,
  sku: string,
  region: string,
  day: string,
): Promise<RegionFc[]> {
  const p = keys.ofSku(sku);
  const ranks = await redis.hgetall(p.region(region));
  const out: RegionFc[] = [];
  for (const [fc, raw] of Object.entries(ranks)) {
    const rank = storedInt(raw);
    if (rank === null) continue;
    const [capacity, load] = await Promise.all([
      redis.hget(p.fc(fc), CAPACITY_FIELD),
      redis.hget(p.load(fc, day), FIELD.loadCount),
    ]);
    out.push({ fc, rank, capacity: storedInt(capacity), load: load ? Number(load) : 0 });
  }
  return out;
}
