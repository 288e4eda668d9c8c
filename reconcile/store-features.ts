/**
 * The feature values as the online store holds them, read by scanning Redis (tombstones and zero
 * loads count as absent). For reconciliation and tests; the read path never scans.
 */
import { FIELD } from '../store/names';
import { pipelineByNode, scanKeys as scanPages, StoreRedis } from '../store/redis-client';
import { storedInt, storedLifecycle } from '../store/field-codec';
import { CAPACITY_FIELD, LIFECYCLE_FIELD, PartitionKeys, StoreKeys } from '../store/keys';
import { emptySnapshot, type FeatureSnapshot } from './source-features';

async function scanKeys(redis: StoreRedis, pattern: string, keys: StoreKeys, only?: PartitionKeys): Promise<string[]> {
  const out: string[] = [];
  for await (const page of scanPages(redis, pattern))
    for (const k of page) if (!only || keys.ofKey(k) === only) out.push(k);
  return out;
}

async function hashes(redis: StoreRedis, keys: string[]): Promise<Record<string, string>[]> {
  const out: Record<string, string>[] = [];
  for (let i = 0; i < keys.length; i += 500) {
    const replies = await pipelineByNode(
      redis,
      keys.slice(i, i + 500),
      (k) => k,
      (p, k) => void p.hgetall(k),
    );
    for (const [err, v] of replies) {
      if (err) throw err;
      out.push(v as Record<string, string>);
    }
  }
  return out;
}

/** FC capacity, region ranks and loads as one partition's copy holds them. */
async function smallFeatures(redis: StoreRedis, keys: StoreKeys, part: PartitionKeys): Promise<FeatureSnapshot> {
  const snap = emptySnapshot();
  const p = part.prefix;
  const fcKeys = await scanKeys(redis, `${p}f:*`, keys, part);
  (await hashes(redis, fcKeys)).forEach((h, i) => {
    const c = storedInt(h[CAPACITY_FIELD]);
    if (c !== null) snap.capacity.set(fcKeys[i].slice(`${p}f:`.length), c);
  });
  const regionKeys = await scanKeys(redis, `${p}r:*`, keys, part);
  (await hashes(redis, regionKeys)).forEach((h, i) => {
    const region = regionKeys[i].slice(`${p}r:`.length);
    for (const [fc, raw] of Object.entries(h)) {
      const r = storedInt(raw);
      if (r !== null) snap.rank.set(`${region}|${fc}`, r);
    }
  });
  const loadKeys = await scanKeys(redis, `${p}l:*`, keys, part);
  (await hashes(redis, loadKeys)).forEach((h, i) => {
    const rest = loadKeys[i].slice(`${p}l:`.length);
    const cut = rest.lastIndexOf(':');
    const n = Number(h[FIELD.loadCount] ?? 0);
    if (n !== 0) snap.load.set(`${rest.slice(0, cut)}|${rest.slice(cut + 1)}`, n);
  });
  return snap;
}

/**
 * `skus: false` leaves the per-SKU features out (verify compares those in chunks). FC capacity,
 * region ranks and loads are those of `partition`'s copy; without it, the first partition's, and
 * every other partition's copy that differs from it appears under "<key>@p<partition>", so a
 * comparison with the source shows it.
 */
export async function storeFeatures(
  redis: StoreRedis,
  keys: StoreKeys,
  opts: { skus?: boolean; partition?: number } = {},
): Promise<FeatureSnapshot> {
  const snap = await smallFeatures(redis, keys, keys.partitions[opts.partition ?? 0]);
  if (opts.partition === undefined) {
    for (const part of keys.partitions.slice(1)) {
      const copy = await smallFeatures(redis, keys, part);
      for (const feature of ['capacity', 'rank', 'load'] as const) {
        const first = snap[feature];
        for (const key of new Set([...first.keys(), ...copy[feature].keys()])) {
          const v = copy[feature].get(key);
          if (v !== first.get(key) && !key.includes('@')) first.set(`${key}@p${part.index}`, v ?? Number.NaN);
        }
      }
    }
  }
  const skuKeys = opts.skus === false ? [] : await scanKeys(redis, keys.pattern('s'), keys);
  (await hashes(redis, skuKeys)).forEach((h, i) => {
    const sku = skuKeys[i].slice(keys.ofKey(skuKeys[i]).prefix.length + 2);
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
  return snap;
}
