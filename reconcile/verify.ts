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
import { createBadgeReader } from '../serving/badge-reader';
import { storedInt, storedLifecycle } from '../store/field-codec';
import { LIFECYCLE_FIELD, StoreKeys, skuOfKey } from '../store/keys';
import { loadWindowStart, utcDay } from '../features/definitions';
import { loadDifferenceExplainer } from './load-ranges';
import { sourceBadges } from './source-badges';
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
      const b = storedInt(h[fc]) ?? undefined;
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

/** The first difference of each feature and key (a key may differ in several partitions' copies). */
function onePerKey(mismatches: VerifyMismatch[]): VerifyMismatch[] {
  const found = new Map<string, VerifyMismatch>();
  for (const m of mismatches) if (!found.has(`${m.feature} ${m.key}`)) found.set(`${m.feature} ${m.key}`, m);
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
  const reader = createBadgeReader({
    redis,
    prefix: keys.prefix,
    partitions: keys.partitions.length,
    staleAfterMs: Number.MAX_SAFE_INTEGER,
  });
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
          out.push({
            sku,
            feature: 'badge',
            key: `${sku}@${region}`,
            source: `${a.reason}${a.fc ? `@${a.fc}` : ''}`,
            store: `${b.reason}${b.fc ? `@${b.fc}` : ''}`,
          });
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
  const badgeSample: string[] = [];
  const takeForBadges = (skus: string[]) => {
    for (const s of skus) if (badgeSample.length < (opts.badgeSkus ?? 200) && Math.random() < 0.5) badgeSample.push(s);
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
  const badges = await badgeMismatches(view.db, redis, keys, badgeSample, at);
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
    settled: Math.max(0, onePerKey(first).length - onePerKey(mismatches).length - onePerKey(unjudged).length),
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
  const smalls = await smallMismatches(view.db, redis, keys, p.loadsFrom);
  again.push(...smalls);
  const badgeSkus = [...new Set(p.badges.map((m) => m.sku!))];
  const badges = (await badgeMismatches(view.db, redis, keys, badgeSkus, p.at)).mismatches;
  again.push(...badges);
  // The loads the badges were read with: today's, as each partition's copy held them before the
  // badge read and after it (read again only when a badge differs)
  if (badges.length) smalls.push(...(await smallMismatches(view.db, redis, keys, p.loadsFrom)));
  const loadsMoved = await badgeLoadsMoved(view.db.inventory, keys, smalls, badges, p.at);
  const changed = explainedBy(await view.changedRows(), { exactLoads: true, loadsMoved });
  const differ = again.filter((m) => !changed(m));
  if (!completeBefore || !(await storeComplete(redis, keys))) return { mismatches: [], unjudged: differ };
  if (applied) return { mismatches: differ, unjudged: [] };
  // Not caught up: what a change the drain has not applied yet touches may be lag; the rest is not.
  if (!unapplied) return { mismatches: [], unjudged: differ };
  const lagging = explainedBy(unapplied, { exactLoads: false, loadsMoved: () => true });
  return { mismatches: differ.filter((m) => !lagging(m)), unjudged: differ.filter(lagging) };
}

/**
 * Did a load its badge reads move in the store away from the view's value? For each badge that
 * differs: whether any FC of its region has, in the SKU's partition's copy, a load of today that
 * differs from the view's (read before the badges and after them). If none did, the store read
 * the badge with the view's loads, and orders changed since cannot explain the difference.
 */
async function badgeLoadsMoved(
  inventory: Db,
  keys: StoreKeys,
  smalls: VerifyMismatch[],
  badges: VerifyMismatch[],
  at: Date,
): Promise<(sku: string, region: string) => boolean> {
  if (!badges.length) return () => false;
  const today = utcDay(at);
  const moved = new Set(
    smalls
      .filter((m) => m.feature === 'load' && m.key.slice(m.key.lastIndexOf('|') + 1) === today)
      .map((m) => `${m.partition}|${m.key.slice(0, m.key.lastIndexOf('|'))}`),
  );
  const regions = [...new Set(badges.map((m) => m.key.slice(m.key.lastIndexOf('@') + 1)))];
  const fcsOf = new Map<string, string[]>();
  for (const r of (
    await inventory.query<{ region: string; fc_id: string }>(
      'select region, fc_id from shop.region_fc where region = any($1)',
      [regions],
    )
  ).rows)
    fcsOf.set(r.region, [...(fcsOf.get(r.region) ?? []), r.fc_id]);
  return (sku, region) => {
    const partition = keys.ofSku(sku).index;
    return (fcsOf.get(region) ?? []).some((fc) => moved.has(`${partition}|${fc}`));
  };
}

/**
 * Which mismatches the source rows changed after the view can explain. `exactLoads`: a load
 * difference only within what the changes' deltas can add up to (reconcile/load-ranges.ts); else
 * any change of its FC explains it. `loadsMoved`: whether a badge's loads moved in the store
 * (badgeLoadsMoved); orders explain a badge difference only then.
 */
function explainedBy(
  changed: ChangedRow[],
  opts: { exactLoads: boolean; loadsMoved: (sku: string, region: string) => boolean },
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
  const loadExplained = opts.exactLoads
    ? loadDifferenceExplainer(changed)
    : (key: string) => loadFcs.has(key.slice(0, key.lastIndexOf('|')));
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
        return loadExplained(m.key, Number(m.store ?? 0) - Number(m.source ?? 0));
      case 'badge': {
        // derived from the SKU's rows, every FC of the region and their loads of today: any of
        // them moving explains it
        const sku = m.sku ?? '';
        return (
          rows.has(`skus ${sku}`) ||
          inventoryOf.has(sku) ||
          tables.has('fulfillment_centers') ||
          tables.has('region_fc') ||
          (tables.has('orders') && opts.loadsMoved(sku, m.key.slice(m.key.lastIndexOf('@') + 1)))
        );
      }
      default:
        return false;
    }
  };
}
