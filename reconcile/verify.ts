/**
 * Verify: reconciles the online store against the source. Features: what SQL computes from the
 * shop tables against what Redis holds, per SKU (complete, in key order, or a random sample),
 * plus every FC, region and daily load; complete runs also look for SKUs the store has and the
 * source does not. Badges: the one rule over the store (the read library) against the rule
 * computed by SQL, for a sample of (SKU, region) pairs.
 *
 * Changes in flight are not mismatches. The source is read in one snapshot S (a REPEATABLE READ
 * transaction held for the run; one per source database under capture from the WAL:
 * reconcile/source-view.ts); whatever differs in a first pass is read again from the store
 * once the store has applied everything S saw, against the same S.
 * What still differs is a mismatch unless the source row changed after S (an outbox row S did not
 * see): then the store may rightly be newer than S, and it is left to the next run. Under steady
 * traffic a comparison with the *current* source would report hot keys (an FC's capacity, a load)
 * as different on every run.
 */
import { pipelineByNode, scanKeys, StoreRedis } from '../store/redis-client';
import type pg from 'pg';
import { storedInt, storedLifecycle } from '../store/field-codec';
import { LIFECYCLE_FIELD, StoreKeys, skuOfKey } from '../store/keys';
import { loadWindowStart } from '../features/definitions';
import { fcOfLoadKey, laterOrderLoads, type LaterOrderLoads } from './load-ranges';
import { parseSnapshot } from '../db/pg-snapshot';
import { Reservoir } from './reservoir';
import { sourceBadges } from './source-badges';
import { badgesTheRegionAccountsFor, badgeText, verifyBadgeReader } from './badge-region';
import { sourceFeatures, type SourceDatabases } from './source-features';
import { type ChangedRow, type SourceView, withTriggerView } from './source-view';
import { storeFeatures } from './store-features';
import { storeComplete } from '../store/watermark';
import { compareSnapshots, Mismatch } from './compare';

export interface VerifyOptions {
  /** Check this many random SKUs instead of all of them. */
  sample?: number;
  /** SKUs whose badges are compared in every region. */
  badgeSkus?: number;
  chunk?: number;
  /** How long to wait for the drain to catch up before the second pass. */
  settleMs?: number;
  /**
   * LOAD_TTL_S: loads are compared for the days the store keeps (features/definitions.ts,
   * loadWindowStart), less the day about to leave the window. Unset: every countable day.
   */
  loadTtlS?: number;
}

export interface VerifyMismatch extends Mismatch {
  sku?: string;
  /** Of an FC's, a region's or a load's difference: the store partition whose copy differs. */
  partition?: number;
}

export interface VerifyReport {
  mode: 'complete' | 'sample';
  checkedSkus: number;
  checkedBadges: number;
  mismatches: VerifyMismatch[];
  /** Mismatches of the first pass that disappeared once the drain caught up (in flight). */
  settled: number;
  /**
   * Differences still there at the second pass on what the drain had not applied within settleMs
   * (a backlog, a paused or failing pipeline; every difference when what it still owes is not
   * known): lag and real mismatches look alike then, so these are neither counted nor repaired.
   */
  unjudged: VerifyMismatch[];
}

type Db = pg.Pool | pg.ClientBase;

async function skuMismatches(
  source: Db,
  redis: StoreRedis,
  keys: StoreKeys,
  skus: string[],
): Promise<VerifyMismatch[]> {
  if (skus.length === 0) return [];
  const [l, inv] = await Promise.all([
    source.query('select sku_id, lifecycle from shop.skus where sku_id = any($1)', [skus]),
    source.query('select sku_id, fc_id, on_hand - reserved as a from shop.inventory where sku_id = any($1)', [skus]),
  ]);
  const lifecycle = new Map<string, string>(l.rows.map((r) => [r.sku_id, r.lifecycle]));
  const avail = new Map<string, Map<string, number>>();
  for (const r of inv.rows) (avail.get(r.sku_id) ?? avail.set(r.sku_id, new Map()).get(r.sku_id)!).set(r.fc_id, r.a);
  const replies = await pipelineByNode(
    redis,
    skus,
    (sku) => keys.sku(sku),
    (p, sku) => void p.hgetall(keys.sku(sku)),
  );
  const hashes = replies.map(([err, v]) => {
    if (err) throw err;
    return v as Record<string, string>;
  });
  const out: VerifyMismatch[] = [];
  skus.forEach((sku, i) => {
    const h = hashes[i];
    // A discontinued SKU whose tombstone expired is gone from the store by design (it answers
    // `unknown`, never a promise): not a mismatch.
    if (lifecycle.get(sku) === 'discontinued' && Object.keys(h).length === 0) return;
    const storeLifecycle = storedLifecycle(h[LIFECYCLE_FIELD]) ?? undefined;
    if (storeLifecycle !== lifecycle.get(sku))
      out.push({ sku, feature: 'lifecycle', key: sku, source: lifecycle.get(sku), store: storeLifecycle });
    const src = avail.get(sku) ?? new Map<string, number>();
    const fcs = new Set([
      ...src.keys(),
      ...Object.keys(h).filter((f) => f !== LIFECYCLE_FIELD && storedInt(h[f]) !== null),
    ]);
    for (const fc of fcs) {
      const a = src.get(fc);
      // (own fields only: an FC id such as "constructor" or "toString" the hash lacks would read
      // the object's inherited function)
      const b = storedInt(Object.hasOwn(h, fc) ? h[fc] : undefined) ?? undefined;
      if (a !== b) out.push({ sku, feature: 'available', key: `${sku}|${fc}`, source: a, store: b });
    }
  });
  return out;
}

/**
 * FCs, regions and loads are small: compared whole (the SKU features are left empty), in every
 * partition's copy (store/keys.ts), each copy's difference on its own (drain shards apply them at
 * their own pace; the report lists a key once: onePerKey). Loads: the days from `loadsFrom` on
 * (the window the store keeps), on both sides.
 */
async function smallMismatches(
  source: SourceDatabases,
  redis: StoreRedis,
  keys: StoreKeys,
  loadsFrom: string | undefined,
): Promise<VerifyMismatch[]> {
  const src = await sourceFeatures(source, { skus: false, loadsFrom });
  const found: VerifyMismatch[] = [];
  for (const part of keys.partitions) {
    const store = await storeFeatures(redis, keys, { skus: false, partition: part.index });
    if (loadsFrom)
      for (const k of [...store.load.keys()])
        if (Number(k.slice(k.lastIndexOf('|') + 1)) < Number(loadsFrom)) store.load.delete(k);
    for (const m of compareSnapshots(src, store)) found.push({ ...m, partition: part.index });
  }
  return found;
}

/** A difference's feature and key (a key may differ in several partitions' copies). */
const featureKey = (m: VerifyMismatch) => `${m.feature} ${m.key}`;

/** How many keys of the first pass no longer differ (the second pass may find new ones too). */
function settledOf(first: VerifyMismatch[], still: VerifyMismatch[]): number {
  const left = new Set(still.map(featureKey));
  return new Set(first.map(featureKey).filter((k) => !left.has(k))).size;
}

/** The first difference of each feature and key (a key may differ in several partitions' copies). */
function onePerKey(mismatches: VerifyMismatch[]): VerifyMismatch[] {
  const found = new Map<string, VerifyMismatch>();
  for (const m of mismatches) if (!found.has(featureKey(m))) found.set(featureKey(m), m);
  return [...found.values()];
}

/** SKUs the store holds as live (with a lifecycle) that the source does not have. */
async function extraSkus(source: Db, redis: StoreRedis, keys: StoreKeys): Promise<VerifyMismatch[]> {
  const out: VerifyMismatch[] = [];
  for await (const found of scanKeys(redis, keys.pattern('s'), 2000)) {
    const replies = await pipelineByNode(
      redis,
      found,
      (k) => k,
      (p, k) => void p.hget(k, LIFECYCLE_FIELD),
    );
    const live = replies
      .map(([, v], i) => [skuOfKey(keys, found[i]), storedLifecycle(v as string | null)] as const)
      .filter(([, l]) => l);
    if (!live.length) continue;
    const known = new Set(
      (await source.query('select sku_id from shop.skus where sku_id = any($1)', [live.map(([s]) => s)])).rows.map(
        (r) => r.sku_id,
      ),
    );
    for (const [sku, l] of live)
      if (!known.has(sku)) out.push({ sku, feature: 'lifecycle', key: sku, source: undefined, store: l ?? undefined });
  }
  return out;
}

/** How many regions a verify run checks badges in. */
export const BADGE_REGIONS = 50;

/**
 * The regions a verify run checks badges in: every region, or BADGE_REGIONS of them chosen at
 * random each run, so runs after runs cover every region (the first 50 by name would leave the
 * others never checked).
 */
export async function badgeRegions(inventory: pg.Pool | pg.ClientBase): Promise<string[]> {
  const r = await inventory.query(
    `select region from (select distinct region from shop.region_fc) r order by random() limit $1`,
    [BADGE_REGIONS],
  );
  return r.rows.map((row) => row.region as string).sort();
}

async function badgeMismatches(
  source: SourceDatabases,
  redis: StoreRedis,
  keys: StoreKeys,
  skus: string[],
  at: Date,
): Promise<{ checked: number; mismatches: VerifyMismatch[] }> {
  if (!skus.length) return { checked: 0, mismatches: [] };
  const regions = await badgeRegions(source.inventory);
  const reader = verifyBadgeReader(redis, keys, at);
  const out: VerifyMismatch[] = [];
  let checked = 0;
  for (const region of regions) {
    for (let i = 0; i < skus.length; i += 200) {
      const part = skus.slice(i, i + 200);
      const [store, sql] = await Promise.all([reader.getBadges(region, part), sourceBadges(source, region, part, at)]);
      part.forEach((sku, n) => {
        checked++;
        const a = sql[n];
        const b = store.badges[n];
        // An expired tombstone answers unknown for a discontinued SKU: no promise either way.
        const expiredTombstone = a.reason === 'discontinued' && b.reason === 'unknown';
        if (!expiredTombstone && (a.reason !== b.reason || a.fc !== b.fc))
          out.push({ sku, feature: 'badge', key: `${sku}@${region}`, source: badgeText(a), store: badgeText(b) });
      });
    }
  }
  return { checked, mismatches: out };
}

/**
 * Verify under the trigger capture: `source` (the replica when configured) holds the shop tables
 * and the outbox, `cursorDb` (the primary) the drain's cursor.
 */
export async function verifyStore(
  source: pg.Pool,
  redis: StoreRedis,
  keys: StoreKeys,
  opts: VerifyOptions = {},
  onProgress?: (checked: number) => void,
  cursorDb: pg.Pool = source,
): Promise<VerifyReport> {
  return withTriggerView(source, cursorDb, (view) => verifyView(view, redis, keys, opts, onProgress));
}

/** Verify against a view of the sources (reconcile/source-view.ts: one per capture mode). */
export async function verifyView(
  view: SourceView,
  redis: StoreRedis,
  keys: StoreKeys,
  opts: VerifyOptions = {},
  onProgress?: (checked: number) => void,
): Promise<VerifyReport> {
  const db = view.db.inventory;
  const chunk = opts.chunk ?? 5_000;
  const mode = opts.sample ? 'sample' : 'complete';
  const at = new Date(); // the UTC day the badges' loads are counted for, the same in both passes
  // The load days compared: the store's window, less the day that leaves it within the minute (its
  // counters may expire between the two passes).
  const loadsFrom = opts.loadTtlS === undefined ? undefined : loadWindowStart(at.getTime() + 60_000, opts.loadTtlS);
  let checkedSkus = 0;
  const first: VerifyMismatch[] = [];
  // The SKUs whose badges are compared: a uniform sample of every SKU checked (a reservoir), so a
  // complete run, which checks them in key order, does not compare the lowest ids only.
  const badgeSample = new Reservoir<string>(opts.badgeSkus ?? 200);
  const takeForBadges = (skus: string[]) => {
    for (const s of skus) badgeSample.offer(s);
  };
  const checkSkus = async (part: string[]) => {
    first.push(...(await skuMismatches(db, redis, keys, part)));
    takeForBadges(part);
    checkedSkus += part.length;
    onProgress?.(checkedSkus);
  };
  if (opts.sample) {
    const skus = (await db.query('select sku_id from shop.skus order by random() limit $1', [opts.sample])).rows.map(
      (r) => r.sku_id as string,
    );
    for (let i = 0; i < skus.length; i += chunk) await checkSkus(skus.slice(i, i + chunk));
  } else {
    for (let after = ''; ;) {
      const part = (
        await db.query('select sku_id from shop.skus where sku_id > $1 order by sku_id limit $2', [after, chunk])
      ).rows.map((r) => r.sku_id as string);
      if (!part.length) break;
      await checkSkus(part);
      after = part[part.length - 1];
    }
    first.push(...(await extraSkus(db, redis, keys)));
  }
  first.push(...(await smallMismatches(view.db, redis, keys, loadsFrom)));
  const badges = await badgeMismatches(view.db, redis, keys, badgeSample.items, at);
  first.push(...badges.mismatches);
  if (first.length === 0)
    return { mode, checkedSkus, checkedBadges: badges.checked, mismatches: [], settled: 0, unjudged: [] };
  const { mismatches, unjudged } = await secondPass(view, redis, keys, {
    first,
    badges: badges.mismatches,
    at,
    loadsFrom,
    chunk,
    opts,
    onWait: () => onProgress?.(checkedSkus),
  });
  return {
    mode,
    checkedSkus,
    checkedBadges: badges.checked,
    mismatches: onePerKey(mismatches),
    settled: settledOf(first, [...mismatches, ...unjudged]),
    unjudged: onePerKey(unjudged),
  };
}

/** Past this many changes the drain still owes, verify does not read them: every difference is unjudged. */
const MAX_UNAPPLIED_ROWS = 10_000;

/**
 * Once the store has applied everything the view saw, what differed is compared again against the
 * same view; what still differs and no later change explains is a mismatch. When the store has not
 * applied that much by the deadline, a difference on what the drain still owes may be nothing but
 * lag: it is unjudged (every difference, when what it owes is not known).
 */
async function secondPass(
  view: SourceView,
  redis: StoreRedis,
  keys: StoreKeys,
  p: {
    first: VerifyMismatch[];
    badges: VerifyMismatch[];
    at: Date;
    loadsFrom: string | undefined;
    chunk: number;
    opts: VerifyOptions;
    /** Called while waiting for the drain (the activity's heartbeat). */
    onWait?: () => void;
  },
): Promise<{ mismatches: VerifyMismatch[]; unjudged: VerifyMismatch[] }> {
  const applied = await view.waitApplied(Date.now() + (p.opts.settleMs ?? 30_000), p.onWait);
  // What the drain still owes, read before the store is read again: the drain only moves on, so
  // whatever is still unapplied at the re-read is among these (read after it, a change applied in
  // between would be missing, and its lag counted as a mismatch).
  const unapplied = applied ? [] : await view.unappliedRows(MAX_UNAPPLIED_ROWS);
  // A store being refilled (after a TRUNCATE, a lost slot, FLUSHALL) lacks what the refill has not
  // written yet, whatever the drain applied: nothing can be judged until it is complete again.
  const completeBefore = await storeComplete(redis, keys);
  const skus = [...new Set(p.first.map((m) => m.sku).filter((s): s is string => !!s))];
  const again: VerifyMismatch[] = [];
  for (let i = 0; i < skus.length; i += p.chunk)
    again.push(...(await skuMismatches(view.db.inventory, redis, keys, skus.slice(i, i + p.chunk))));
  // (SKUs only the store has are among `skus`: re-checking them tells whether they still are.)
  // Where the store may be in the later changes: what the drain had applied before the loads are
  // read again, and what had committed by the end of that read (reconcile/load-ranges.ts).
  const drainApplied = await view.drainApplied();
  again.push(...(await smallMismatches(view.db, redis, keys, p.loadsFrom)));
  const present = await view.outboxNow();
  const viewMaybe = view.viewMaybe();
  const reach =
    viewMaybe === undefined
      ? null // what the view saw is not all captured: every later change may or may not be in it
      : {
          applied: parseSnapshot(drainApplied),
          present: parseSnapshot(present),
          viewMaybe: viewMaybe === null ? null : parseSnapshot(viewMaybe),
        };
  const badgeSkus = [...new Set(p.badges.map((m) => m.sku!))];
  const badges = (await badgeMismatches(view.db, redis, keys, badgeSkus, p.at)).mismatches;
  again.push(...badges);
  // the store read again before the later changes are: one the drain applied before it is among them
  const badgeRegion = await badgesTheRegionAccountsFor(view.db, redis, keys, badges, p.at);
  const changedRows = await view.changedRows();
  const changed = explainedBy(changedRows, { loads: laterOrderLoads(changedRows, reach), badgeRegion });
  const differ = again.filter((m) => !changed(m));
  if (!completeBefore || !(await storeComplete(redis, keys))) return { mismatches: [], unjudged: differ };
  if (applied) return { mismatches: differ, unjudged: [] };
  // Not caught up: what a change the drain has not applied yet touches may be lag; the rest is not.
  if (!unapplied) return { mismatches: [], unjudged: differ };
  // (the store lacks some of them: their FCs' differences, whatever their size, may be lag)
  const lagging = explainedBy(unapplied, { loads: null, badgeRegion: null });
  return { mismatches: differ.filter((m) => !lagging(m)), unjudged: differ.filter(lagging) };
}

/**
 * Which mismatches the source rows changed after the view can explain. `loads`: a load difference
 * only as far as the changes' deltas reach (reconcile/load-ranges.ts); `badgeRegion`: the badge
 * differences the store's own region-level values account for (reconcile/badge-region.ts). Null
 * (the changes the drain has not applied yet): any change of a load's FC explains it, and any
 * change of an FC, a region or an order a badge's.
 */
function explainedBy(
  changed: ChangedRow[],
  opts: { loads: LaterOrderLoads | null; badgeRegion: ReadonlySet<string> | null },
): (m: VerifyMismatch) => boolean {
  const rows = new Set<string>();
  const loadFcs = new Set<string>();
  const tables = new Set<string>();
  const inventoryOf = new Set<string>();
  for (const x of changed) {
    rows.add(`${x.tbl} ${x.key}`);
    tables.add(x.tbl);
    if (x.tbl === 'orders') for (const fc of [x.fc, x.old_fc]) if (fc) loadFcs.add(fc);
    if (x.tbl === 'inventory') inventoryOf.add(String(x.key).split('|')[0]);
  }
  const loads = opts.loads;
  return (m) => {
    switch (m.feature) {
      case 'lifecycle':
        return rows.has(`skus ${m.key}`);
      case 'available':
        return rows.has(`inventory ${m.key}`);
      case 'capacity':
        return rows.has(`fulfillment_centers ${m.key}`);
      case 'rank':
        return rows.has(`region_fc ${m.key}`);
      case 'load':
        return loads === null
          ? loadFcs.has(fcOfLoadKey(m.key))
          : loads.explains(m.key, Number(m.store ?? 0) - Number(m.source ?? 0));
      case 'badge': {
        // derived from the SKU's rows, and its region's FCs, their capacity and loads of today:
        // a change of the SKU's rows explains it; the region's values when the store's own account
        // for it (each is checked on its own); not known (changes the drain has not applied yet):
        // any change of them
        const sku = m.sku ?? '';
        if (rows.has(`skus ${sku}`) || inventoryOf.has(sku)) return true;
        return opts.badgeRegion === null
          ? tables.has('fulfillment_centers') || tables.has('region_fc') || tables.has('orders')
          : opts.badgeRegion.has(m.key);
      }
      default:
        return false;
    }
  };
}
