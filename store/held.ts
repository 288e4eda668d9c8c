/**
 * What a waiting dead letter holds back from fresh answers ({pp}held). A change the drain sent to
 * the dead letters is missing from the store while it waits: reads that depend on it must not
 * answer fresh from the store's older value. Each dead-lettered change names what it touched, a
 * field of its partitions' held hash (the value: when it was held, ms):
 *   s:<sku>     a skus or inventory row: reads answer that SKU `unknown`
 *   f:<fc>      an FC or an order (its load): reads of a region served by that FC are stale
 *   r:<region>  a region's FC list: reads of that region are stale
 *   all         a TRUNCATE, or a row whose subject cannot be told: every read of the partition is stale
 * (store/lua/read-badges.lua checks them in the same call that reads the data.) Rows of tables the
 * badge does not read hold nothing, a TRUNCATE of one (outside the contract: isTruncate) included.
 *
 * Written before the call that moves the store's position past the change (for a change Redis
 * rejected: in that same call, store/lua/apply.lua), so no Redis file holds that position without
 * the hold; again before the dead letter's commit, and after it, so no commit leaves its change
 * unheld (a retry of an older letter of the same subject may release it in between). Released by
 * a retry or a discard once no letter still waiting names the subject; a hold older than
 * HELD_SETTLE_MS that no waiting letter names (a drain that died before its commit) goes with any
 * release: the drain asks once a minute (activities/drain/settle-holds.ts), compaction every run. A
 * rebuild of the store removes them with everything else; its refill holds what every waiting
 * letter names again before it marks the store complete (finishBackfill, activities/backfill).
 */
import { isTruncate, keyColumnsOf } from '../capture/source-tables';
import type { PartitionKeys, StoreKeys } from './keys';
import type { StoreRedis } from './redis-client';
import { HELD } from './names';
import { defineScripts, runScript, SCRIPTS } from './scripts';

/** A dead-lettered change as the dead letters keep it (images as parsed JSON or JSON text). */
export interface HeldRow {
  tbl: string | null;
  op: string | null;
  key: string | null;
  image: unknown;
  old_image: unknown;
}

export const HELD_ALL = HELD.all;

/** How old a hold must be before compaction may release it for want of a waiting letter. */
export const HELD_SETTLE_MS = 10 * 60_000;

/**
 * How much newer than a retry a hold must be to be known written after it: holds carry the
 * worker's or Redis's clock, retries PostgreSQL's (release).
 */
export const HELD_CLOCK_MARGIN_MS = 5 * 60_000;

/** The held fields a dead-lettered change names (none: a table the badge does not read). */
export function heldSubjects(row: HeldRow): string[] {
  if (isTruncate(row)) return [HELD_ALL];
  // An empty id is an id: the contract's id pattern refuses it, so a row naming one is a dead
  // letter, but it names that id, which no read can ask for (serving/request-validation.ts). Held
  // as what it is, it makes nothing stale; taken for "cannot be told" it held the whole partition.
  const key = row.key;
  const field = (name: string) => {
    const v = (parsed(row.image) as Record<string, unknown> | null)?.[name];
    return typeof v === 'string' ? v : null;
  };
  const told = (s: string | null | undefined): s is string => typeof s === 'string';
  switch (row.tbl) {
    case 'skus': {
      // the key, and the image's id when they disagree (the update is the image's)
      const skus = new Set([key, field('sku_id')].filter(told));
      return skus.size ? [...skus].map((sku) => `${HELD.sku}${sku}`) : [HELD_ALL];
    }
    case 'inventory': {
      const sku = (told(key) ? keyColumnsOf('inventory', key)?.[0] : null) ?? field('sku_id');
      return told(sku) ? [`${HELD.sku}${sku}`] : [HELD_ALL];
    }
    case 'fulfillment_centers':
      return told(key) ? [`${HELD.fc}${key}`] : [HELD_ALL];
    case 'region_fc': {
      const region = (told(key) ? keyColumnsOf('region_fc', key)?.[0] : null) ?? field('region');
      return told(region) ? [`${HELD.region}${region}`] : [HELD_ALL];
    }
    case 'orders': {
      // the set that says a refill's loads are complete (capture/chunk-rows.ts): not applied, any
      // FC's counter may be off (ADR 0014's whole partition)
      if (row.op === 'S' && (parsed(row.image) as Record<string, unknown> | null)?.complete_from !== undefined)
        return [HELD_ALL];
      const fcs = new Set<string>();
      for (const image of [row.image, row.old_image]) {
        const fc = (parsed(image) as Record<string, unknown> | null)?.fc_id;
        if (typeof fc === 'string' && fc !== '') fcs.add(fc);
      }
      // an update without its before-image, a delete without its image: the FC it counted on
      // cannot be told
      const needed = row.op === 'U' ? [row.image, row.old_image] : [row.image];
      if (needed.some((image) => !isObject(parsed(image))))
        return [HELD_ALL, ...[...fcs].map((fc) => `${HELD.fc}${fc}`)];
      // an order with no FC counts nowhere (ADR 0009)
      return [...fcs].map((fc) => `${HELD.fc}${fc}`);
    }
    default:
      return [];
  }
}

const isObject = (v: unknown): boolean => typeof v === 'object' && v !== null && !Array.isArray(v);

/** JSON text parsed, an object as is, null as null; undefined when it is not JSON. */
function parsed(v: unknown): unknown {
  if (typeof v !== 'string') return v ?? null;
  try {
    return JSON.parse(v) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * The partitions a held field lives in: a SKU's own, everything else in every partition given.
 * `within`: a SKU's own only if it is one of those given.
 */
function partitionsOf(
  keys: StoreKeys,
  partitions: readonly PartitionKeys[],
  subject: string,
  within = false,
): PartitionKeys[] {
  if (!subject.startsWith(HELD.sku)) return [...partitions];
  const own = keys.ofSku(subject.slice(HELD.sku.length));
  return !within || partitions.some((p) => p.index === own.index) ? [own] : [];
}

/** Holds the subjects of these dead-lettered changes, in `partitions` (a drain shard's own). */
export async function hold(
  redis: StoreRedis,
  keys: StoreKeys,
  rows: readonly HeldRow[],
  partitions: readonly PartitionKeys[] = keys.partitions,
  /** Only where the subject is not held yet (holding waiting letters again: holdWaiting). */
  ifAbsent = false,
  /** In `partitions` alone, a SKU's subject too (a rewind's partitions that kept their writes). */
  within = false,
): Promise<void> {
  const now = String(Date.now());
  const byKey = new Map<string, Set<string>>();
  for (const row of rows)
    for (const subject of heldSubjects(row))
      for (const p of partitionsOf(keys, partitions, subject, within)) {
        let subjects = byKey.get(p.held);
        if (!subjects) byKey.set(p.held, (subjects = new Set()));
        subjects.add(subject);
      }
  for (const [key, subjects] of byKey) {
    if (!ifAbsent) await redis.hset(key, ...[...subjects].flatMap((s) => [s, now]));
    else for (const s of subjects) await redis.hsetnx(key, s, now);
  }
}

/** Every subject held now, in any partition. */
export async function heldNow(redis: StoreRedis, keys: StoreKeys): Promise<Set<string>> {
  const read = await Promise.all(keys.partitions.map((p) => redis.hkeys(p.held)));
  return new Set(read.flat());
}

/** A letter retried (applied) before, as a hold older than its retry is judged by (release). */
export type RetriedLetter = HeldRow & { retriedAtMs: number };

/**
 * Releases held subjects that no letter still waiting names: those of `subjects` (the letters a
 * retry or a discard just settled) and every hold older than HELD_SETTLE_MS (one whose drain died
 * before committing its letter; a younger one may belong to a letter not committed yet). The holds
 * are read first and the waiting letters asked after (`stillWaiting`), and a field goes only if
 * its hold is unchanged since (store/lua/release-held.lua): a letter committed after the question
 * was held again by its drain, with a new value. Returns how many fields went.
 *
 * Nor a hold no newer than the retry of a letter that names it (`retried`: the letters retried
 * lately, but those just settled; newer by HELD_CLOCK_MARGIN_MS at least): a retry releases its
 * letter's hold, so such a hold is back from a Redis file written before that retry finished, and
 * the store may have lost what the retry wrote. Compaction applies those letters again first
 * (activities/dead-letters/reapply.ts); released before, the reads would answer fresh without the
 * change for good. (Two letters of one subject retried in separate calls keep it so too, until
 * that compaction run: stale for up to an hour, never wrong.)
 */
export async function release(
  redis: StoreRedis,
  keys: StoreKeys,
  stillWaiting: () => Promise<readonly HeldRow[]>,
  subjects: readonly string[] = [],
  retried: () => Promise<readonly RetriedLetter[]> = async () => [],
): Promise<number> {
  defineScripts(redis);
  const oldest = Date.now() - HELD_SETTLE_MS;
  const settled = new Set(subjects);
  const read = await Promise.all(keys.partitions.map((p) => redis.hgetall(p.held)));
  const candidates = read.map((held) =>
    Object.entries(held).filter(([s, at]) => settled.has(s) || Number(at) < oldest),
  );
  if (!candidates.some((c) => c.length)) return 0;
  const keep = new Set((await stillWaiting()).flatMap(heldSubjects));
  const lastRetry = new Map<string, number>();
  for (const letter of await retried())
    for (const s of heldSubjects(letter)) lastRetry.set(s, Math.max(lastRetry.get(s) ?? 0, letter.retriedAtMs));
  let released = 0;
  for (const [i, p] of keys.partitions.entries()) {
    const gone = candidates[i]!.filter(
      ([s, at]) => !keep.has(s) && !(Number(at) <= (lastRetry.get(s) ?? -Infinity) + HELD_CLOCK_MARGIN_MS),
    );
    if (gone.length) released += Number(await runScript(redis, SCRIPTS.releaseHeld, 1, p.held, ...gone.flat()));
  }
  return released;
}
