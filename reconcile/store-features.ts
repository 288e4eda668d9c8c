/**
 * The feature values as the online store holds them, read by scanning Redis (tombstones and zero
 * loads count as absent). For reconciliation and tests; the read path never scans.
 */
import type { Redis } from 'ioredis';
import { storedInt, storedLifecycle } from '../store/field-codec';
import { CAPACITY_FIELD, LIFECYCLE_FIELD, StoreKeys } from '../store/keys';
import { emptySnapshot, type FeatureSnapshot } from './source-features';

async function scanKeys(redis: Redis, pattern: string): Promise<string[]> {
  const out: string[] = [];
  for await (const keys of redis.scanStream({ match: pattern, count: 1000 }) as AsyncIterable<string[]>)
    out.push(...keys);
  return out;
}

async function hashes(redis: Redis, keys: string[]): Promise<Record<string, string>[]> {
  const out: Record<string, string>[] = [];
  for (let i = 0; i < keys.length; i += 500) {
    const p = redis.pipeline();
    for (const k of keys.slice(i, i + 500)) p.hgetall(k);
    for (const [err, v] of (await p.exec()) ?? []) {
      if (err) throw err;
      out.push(v as Record<string, string>);
    }
  }
  return out;
}

/** `skus: false` leaves the per-SKU features out (verify compares those in chunks). */
export async function storeFeatures(
  redis: Redis,
  keys: StoreKeys,
  opts: { skus?: boolean } = {},
): Promise<FeatureSnapshot> {
  const snap = emptySnapshot();
  const p = keys.prefix;
  const skuKeys = opts.skus === false ? [] : await scanKeys(redis, `${p}s:*`);
  (await hashes(redis, skuKeys)).forEach((h, i) => {
    const sku = skuKeys[i].slice(`${p}s:`.length);
    for (const [field, raw] of Object.entries(h)) {
      if (field === LIFECYCLE_FIELD) {
        const l = storedLifecycle(raw);
        if (l) snap.lifecycle.set(sku, l);
      } else {
        const a = storedInt(raw);
        if (a !== null) snap.available.set(`${sku}|${field}`, a);
      }
    }
  });
  const fcKeys = await scanKeys(redis, `${p}f:*`);
  (await hashes(redis, fcKeys)).forEach((h, i) => {
    const c = storedInt(h[CAPACITY_FIELD]);
    if (c !== null) snap.capacity.set(fcKeys[i].slice(`${p}f:`.length), c);
  });
  const regionKeys = await scanKeys(redis, `${p}r:*`);
  (await hashes(redis, regionKeys)).forEach((h, i) => {
    const region = regionKeys[i].slice(`${p}r:`.length);
    for (const [fc, raw] of Object.entries(h)) {
      const r = storedInt(raw);
      if (r !== null) snap.rank.set(`${region}|${fc}`, r);
    }
  });
  const loadKeys = await scanKeys(redis, `${p}l:*`);
  (await hashes(redis, loadKeys)).forEach((h, i) => {
    const rest = loadKeys[i].slice(`${p}l:`.length);
    const cut = rest.lastIndexOf(':');
    const n = Number(h.n ?? 0);
    if (n !== 0) snap.load.set(`${rest.slice(0, cut)}|${rest.slice(cut + 1)}`, n);
  });
  return snap;
}
