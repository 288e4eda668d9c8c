/**
 * No read is answered fresh from a partition that is being emptied or refilled (issue 21, point 1).
 *
 * Readers run flat out, in parallel, while the store is rebuilt by every path that rebuilds it: a
 * captured TRUNCATE, a store found ahead of the source, a change of STORE_PARTITIONS (read by a
 * reader still configured with the old count), and a retried TRUNCATE dead letter. The catalogue
 * has an FC at capacity, so a load counter unlinked before its FC's copy would turn
 * `fc_at_capacity` into a false `eligible`. Every answer that says `stale: false` must be the
 * source's badge at some time at or after its `asOf`: here the source does not change during a
 * rebuild except by the TRUNCATE itself, so that is the badge before the TRUNCATE (only for an
 * `asOf` before it committed) or the badge after it.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { Activities } from '../../activities';
import type { Badge } from '../../features/badge-rule';
import { sourceBadges } from '../../reconcile/source-badges';
import { createBadgeReader } from '../../serving/badge-reader';
import { CatalogueSize, regionId, seedCatalogue, skuId } from '../../simulator/catalogue';
import { storeKeys } from '../../store/keys';
import { upgradeStoreLayout } from '../../store/layout';
import { activitiesFor } from '../support/activities';
import { backfillEverything } from '../support/backfill';
import { restoreCursorRow, saveCursorRow } from '../support/cursor';
import { leaveTruncateDeadLetter } from '../support/source';
import { pipelineClients, resetState, testClients } from '../support/env';
import { withSmallScanPages } from '../support/small-scan-pages';

const size: CatalogueSize = { skus: 1500, fcs: 4, regions: 2, fcsPerRegion: 2, fcsPerSku: 2 };
const c = testClients({ STALE_AFTER_MS: '600000' });
afterAll(() => c.close());
const owner = 'rebuild-window-test';
const skus = Array.from({ length: size.skus }, (_, i) => skuId(i));
const regions = Array.from({ length: size.regions }, (_, i) => regionId(i));

async function drainAll(acts: Activities): Promise<void> {
  for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') return;
}

/** The source's badge of every (region, SKU), keyed `region|sku`. */
async function sourceRule(): Promise<Map<string, Badge>> {
  const out = new Map<string, Badge>();
  for (const region of regions)
    for (const b of await sourceBadges(c.pool, region, skus)) out.set(`${region}|${b.sku}`, b);
  return out;
}

/** A catalogue drained into a complete store, with FC-000 at capacity today. */
async function seeded(): Promise<Activities> {
  const acts = activitiesFor({ ...pipelineClients(c), redis: withSmallScanPages(c.redis) });
  await resetState(c);
  await acts.acquireDrainLease({ owner });
  await seedCatalogue(c.pool, size);
  await c.pool.query(
    `insert into shop.orders (sku_id, fc_id, qty, status)
     select $1, 'FC-000', daily_capacity, 'placed' from shop.fulfillment_centers where fc_id = 'FC-000'`,
    [skuId(0)],
  );
  await drainAll(acts);
  return acts;
}

interface Window {
  /** Answers before this (ms) may be the old badge. */
  changedFrom: number;
  /** Answers with asOf at or after this must be the new badge. */
  changedBy: number;
  before: Map<string, Badge>;
  after: Map<string, Badge>;
}

/**
 * Reads every SKU of every region, four readers at once, until `work` is done; returns how many
 * answers were fresh and every fresh answer that was not the source's badge at or after its asOf.
 */
async function readThrough(
  reader: ReturnType<typeof createBadgeReader>,
  window: () => Window,
  work: () => Promise<void>,
): Promise<{ fresh: number; stale: number; wrong: string[] }> {
  let done = false;
  const wrong: string[] = [];
  let fresh = 0;
  let stale = 0;
  const loop = async (n: number) => {
    for (let i = n; !done; i += 4) {
      const region = regions[i % regions.length];
      const from = ((i * 37) % (skus.length / 50)) * 50;
      const a = await reader.getBadges(region, skus.slice(from, from + 50));
      if (a.stale) {
        stale++;
        continue;
      }
      fresh++;
      const w = window();
      const asOf = Date.parse(a.asOf!);
      for (const b of a.badges) {
        const k = `${region}|${b.sku}`;
        const ok =
          JSON.stringify(b) === JSON.stringify(w.after.get(k)) ||
          (asOf < w.changedBy && JSON.stringify(b) === JSON.stringify(w.before.get(k)));
        if (!ok && wrong.length < 20)
          wrong.push(
            `${k}: read ${JSON.stringify(b)} as fresh (asOf ${a.asOf}), source ${JSON.stringify(w.after.get(k))}`,
          );
      }
    }
  };
  const readers = [0, 1, 2, 3].map(loop);
  try {
    await work();
  } finally {
    done = true;
    await Promise.all(readers);
  }
  return { fresh, stale, wrong };
}

const unchanged = (rule: Map<string, Badge>): Window => ({
  changedFrom: Infinity,
  changedBy: Infinity,
  before: rule,
  after: rule,
});

function readerFor(partitions = c.keys.partitions.length) {
  return createBadgeReader({ redis: c.redis, prefix: c.keys.prefix, partitions, staleAfterMs: 600_000 });
}

describe('reads during a store rebuild', () => {
  it('a captured TRUNCATE: no fresh answer from the half-emptied or half-refilled store', async () => {
    const acts = await seeded();
    const before = await sourceRule();
    expect([...before.values()].some((b) => b.reason === 'fc_at_capacity')).toBe(true);
    let w = unchanged(before);
    const r = await readThrough(
      readerFor(),
      () => w,
      async () => {
        const from = Date.now();
        await c.pool.query(`truncate shop.inventory`);
        w = { changedFrom: from, changedBy: Date.now(), before, after: await sourceRule() };
        await drainAll(acts); // meets the TRUNCATE: empties the store
        await backfillEverything(acts, 'rebuild-window-truncate');
        await drainAll(acts);
      },
    );
    expect(r.wrong).toEqual([]);
    expect(r.stale).toBeGreaterThan(0);
    expect((await readerFor().getBadges(regions[0], skus.slice(0, 5))).stale).toBe(false);
  });

  it('a store ahead of the source: no fresh answer while it is emptied and refilled', async () => {
    const acts = await seeded();
    const backup = await saveCursorRow(c.pool);
    // Changes the store sees and the "restored" database will not know about (they stay in the
    // source: the rule below is the source's as it is now).
    await c.pool.query(`update shop.inventory set on_hand = on_hand + 1 where fc_id = 'FC-001'`);
    await drainAll(acts);
    await restoreCursorRow(c.pool, backup);
    const rule = await sourceRule();
    const r = await readThrough(
      readerFor(),
      () => unchanged(rule),
      async () => {
        await drainAll(acts); // finds the store ahead: rebuilds it
        await backfillEverything(acts, 'rebuild-window-ahead');
        await drainAll(acts);
      },
    );
    expect(r.wrong).toEqual([]);
    expect(r.stale).toBeGreaterThan(0);
  });

  it('a change of STORE_PARTITIONS: a reader still on the old count never reads the emptied store as fresh', async () => {
    await seeded();
    const rule = await sourceRule();
    const other = c.keys.partitions.length === 1 ? 4 : 1;
    const r = await readThrough(
      readerFor(),
      () => unchanged(rule),
      async () => {
        const slow = withSmallScanPages(c.redis);
        expect(await upgradeStoreLayout(slow, storeKeys(c.keys.prefix, other), () => undefined)).toBe(true);
      },
    );
    expect(r.wrong).toEqual([]);
    expect(r.stale).toBeGreaterThan(0);
    // back to the test's own layout for the files that follow
    await upgradeStoreLayout(c.redis, c.keys, () => undefined);
  });

  it('a retried TRUNCATE dead letter: no fresh answer while the store is emptied and refilled', async () => {
    const acts = await seeded();
    const before = await sourceRule();
    await leaveTruncateDeadLetter(c.pool);
    // Until the retry the store answers from before the TRUNCATE, with the asOf it had then; from
    // the retry's first write on, every fresh answer must be the source's as it is now.
    const w: Window = { changedFrom: Date.now(), changedBy: Date.now(), before, after: await sourceRule() };
    const r = await readThrough(
      readerFor(),
      () => w,
      async () => {
        expect(await acts.retryDeadLetters({})).toMatchObject({ retried: 1, failed: 0 });
        await backfillEverything(acts, 'rebuild-window-dead-letter');
        await drainAll(acts);
      },
    );
    expect(r.wrong).toEqual([]);
    expect(r.stale).toBeGreaterThan(0);
  });
});
