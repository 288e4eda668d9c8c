/**
 * SKU lifecycle through the real drain: discontinued tombstones with TTL, pausing, reactivation
 * before and after the tombstone expired (the rebuild workflow), and resurrection attempts.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { LIFECYCLE_FIELD } from '../../store/keys';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { compareSnapshots } from '../../reconcile/compare';
import { sourceFeatures } from '../../reconcile/source-features';
import { storeFeatures } from '../../reconcile/store-features';
import { applyUpdates } from '../../store/apply';
import { skuRebuildWorkflowId } from '../../workflows';
import { usePipeline } from '../support/pipeline-fixture';
import { sourceRowsFor } from '../../capture/source-rows';
import { drainSettled, eventually, resetState, startDrain } from '../support/env';
import { get } from '../support/http';

// the first test checks the tombstone after a drained stock update, and the last two a key written
// again as D after the expiry: room for a loaded machine (5 s was little where capture is slow)
const TTL_S = 8;
const pipeline = usePipeline('lifecycle', {
  config: { TOMBSTONE_TTL_S: String(TTL_S), DRAIN_LEASE_TTL_MS: '1000' },
  worker: true,
  api: {},
});
const { c, taskQueue } = pipeline;
let drain: Awaited<ReturnType<typeof startTheDrain>> | undefined;
const startTheDrain = () =>
  startDrain(pipeline.temporal.client, c.config, {
    taskQueue,
    workflowId: `drain-lifecycle-${Date.now()}`,
    args: [{ intervalMs: 600_000, idleWaitMs: 200 }],
  });
/** Rebuilds a case's drain started: one left running (its worker gone with this file) would keep a
 * later start of the same id, in the next case or the next file, from starting at all. */
const endRebuilds = async () => {
  for (const sku of ['S1', 'NS'])
    await pipeline.temporal.client.workflow
      .getHandle(skuRebuildWorkflowId(sku))
      .terminate('next test')
      .catch(() => undefined);
};
afterAll(endRebuilds);
beforeEach(async () => {
  if (drain) {
    await drain.terminate('next test').catch(() => undefined);
    await drainSettled(c);
  }
  // a rebuild the last case's drain started (once more, after the last one cleared its request)
  // must not re-emit rows into the next case's shop
  await endRebuilds();
  await resetState(c);
  await c.pool.query(`insert into shop.fulfillment_centers values ('F1', 'R1', 100, now()), ('F2', 'R1', 100, now())`);
  await c.pool.query(`insert into shop.region_fc values ('R1', 'F1', 1), ('R1', 'F2', 2)`);
  await c.pool.query(`insert into shop.skus (sku_id, title, lifecycle) values ('S1', 's', 'active')`);
  await c.pool.query(`insert into shop.inventory values ('S1', 'F1', 5, 0, now()), ('S1', 'F2', 5, 0, now())`);
  drain = await startTheDrain();
  await until({ reason: 'eligible', fc: 'F1' }, 'initial state');
});

const q = (sql: string, params: unknown[] = []) => c.pool.query(sql, params);
const badge = async () => (await get(`${pipeline.api.base}/v1/badges/S1?region=R1`)).body;
const until = (want: Record<string, unknown>, what: string, ms = 10_000) =>
  eventually(
    async () => {
      const b = await badge();
      return Object.entries(want).every(([k, v]) => b[k] === v) ? b : null;
    },
    ms,
    what,
  );
const skuInSync = async () => {
  const [src, store] = [await sourceFeatures(c.pool), await storeFeatures(c.redis, c.keys)];
  return compareSnapshots(src, store).filter((m) => m.key.startsWith('S1')).length === 0;
};

describe('SKU lifecycle', () => {
  it('discontinued: tombstone within seconds, never badged again, expires to unknown and frees the key', async () => {
    await q(`update shop.skus set lifecycle = 'discontinued' where sku_id = 'S1'`);
    await until({ reason: 'discontinued', eligible: false }, 'discontinued');
    const ttl = await c.redis.ttl(c.keys.sku('S1'));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(TTL_S);

    // Newer stock changes of a discontinued SKU never badge it.
    await q(`update shop.inventory set on_hand = 50 where sku_id = 'S1'`);
    await eventually(
      async () => (await c.redis.hget(c.keys.sku('S1'), 'F1'))?.startsWith('50|'),
      10_000,
      'stock applied to the tombstone',
    );
    expect((await badge()).reason).toBe('discontinued');

    // A late change older than the tombstone (by source position) never resurrects it.
    const tomb = await c.redis.hget(c.keys.sku('S1'), LIFECYCLE_FIELD);
    const version = Number(tomb!.split('|')[1]);
    await applyUpdates(
      c.redis,
      c.keys,
      [
        {
          update: { feature: 'sku.lifecycle', sku: 'S1', value: 'active', version: version - 1, txid: '1' },
          source: 0,
        },
      ],
      { chunk: 10, tombstoneTtlS: TTL_S, loadTtlS: 60 },
    );
    expect(await c.redis.hget(c.keys.sku('S1'), LIFECYCLE_FIELD)).toBe(tomb);
    expect((await badge()).reason).toBe('discontinued');

    // After the TTL: unknown, and the key is gone.
    await until({ reason: 'unknown' }, 'tombstone expiry', (TTL_S + 5) * 1000);
    expect(await c.redis.exists(c.keys.sku('S1'))).toBe(0);

    // A later stock change for the forgotten SKU leaves only a self-expiring key: no leak.
    await q(`update shop.inventory set on_hand = 7 where sku_id = 'S1' and fc_id = 'F1'`);
    await eventually(
      async () => (await c.redis.hget(c.keys.sku('S1'), 'F1'))?.startsWith('7|'),
      10_000,
      'orphan stock change applied',
    );
    expect(await c.redis.ttl(c.keys.sku('S1'))).toBeGreaterThan(0);
    expect((await badge()).reason).toBe('unknown');
  });

  it("discontinued: the key's TTL runs from the discontinuation, not from each later write of its row", async () => {
    await q(`update shop.skus set lifecycle = 'discontinued' where sku_id = 'S1'`);
    await until({ reason: 'discontinued' }, 'discontinued');
    const first = await c.redis.hget(c.keys.sku('S1'), LIFECYCLE_FIELD);
    await sleep(1_000); // (short: the edit must be applied well before the 8-s TTL runs out on a loaded machine)
    // a title edited (every row touched by a nightly job, say): a newer write of the same state
    await q(`update shop.skus set title = 'edited' where sku_id = 'S1'`);
    await eventually(
      async () => (await c.redis.hget(c.keys.sku('S1'), LIFECYCLE_FIELD)) !== first,
      10_000,
      'the edit applied',
    );
    expect(await c.redis.hget(c.keys.sku('S1'), LIFECYCLE_FIELD)).toMatch(/^d\|/);
    const left = await c.redis.pttl(c.keys.sku('S1'));
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThanOrEqual(TTL_S * 1000 - 900); // restarted by the edit: about TTL_S * 1000
  });

  it('a SKU made active and discontinued again within one drain batch starts a new TTL', async () => {
    const opts = { chunk: 10, tombstoneTtlS: TTL_S, loadTtlS: 60 };
    const lc = (value: 'active' | 'discontinued', version: number) => ({
      update: { feature: 'sku.lifecycle' as const, sku: 'Z9', value, version, txid: '1' },
      source: version,
    });
    await applyUpdates(c.redis, c.keys, [lc('discontinued', 1)], opts);
    await sleep(1_500);
    // folded to the last alone, the script would see discontinued over discontinued and keep the TTL
    await applyUpdates(c.redis, c.keys, [lc('active', 2), lc('discontinued', 3)], opts);
    expect(await c.redis.hget(c.keys.sku('Z9'), LIFECYCLE_FIELD)).toBe('d|3');
    expect(await c.redis.pttl(c.keys.sku('Z9'))).toBeGreaterThan(TTL_S * 1000 - 1_000);
  });

  it('paused answers paused; back to active answers from current stock', async () => {
    await q(`update shop.skus set lifecycle = 'paused' where sku_id = 'S1'`);
    await until({ reason: 'paused' }, 'paused');
    expect(await c.redis.ttl(c.keys.sku('S1'))).toBe(-1); // pausing is not a tombstone
    await q(`update shop.inventory set on_hand = 0 where sku_id = 'S1' and fc_id = 'F1'`);
    await q(`update shop.skus set lifecycle = 'active' where sku_id = 'S1'`);
    await until({ reason: 'eligible', fc: 'F2' }, 'active from current stock');
  });

  it('reactivated before the tombstone expired: badges again with current stock, and persists', async () => {
    await q(`update shop.skus set lifecycle = 'discontinued' where sku_id = 'S1'`);
    await until({ reason: 'discontinued' }, 'discontinued');
    await q(`update shop.inventory set on_hand = 0 where sku_id = 'S1' and fc_id = 'F1'`);
    await q(`update shop.skus set lifecycle = 'active' where sku_id = 'S1'`);
    await until({ reason: 'eligible', fc: 'F2' }, 'reactivated');
    expect(await c.redis.ttl(c.keys.sku('S1'))).toBe(-1);
    expect(await skuInSync()).toBe(true);
  });

  it('reactivated after the tombstone expired: a rebuild workflow restores current stock at every FC', async () => {
    await q(`update shop.skus set lifecycle = 'discontinued' where sku_id = 'S1'`);
    await until({ reason: 'discontinued' }, 'discontinued');
    await until({ reason: 'unknown' }, 'tombstone expiry', (TTL_S + 5) * 1000);
    expect(await c.redis.exists(c.keys.sku('S1'))).toBe(0);
    // Meanwhile F1 sells out while F2 is restocked, and neither change has a key to land in.
    await q(`update shop.inventory set on_hand = 0 where sku_id = 'S1' and fc_id = 'F1'`);
    await q(`update shop.inventory set on_hand = 9, reserved = 2 where sku_id = 'S1' and fc_id = 'F2'`);
    await eventually(async () => (await c.redis.exists(c.keys.sku('S1'))) === 1, 10_000, 'orphan keys');
    await c.redis.del(c.keys.sku('S1')); // as if they had expired too: only the rebuild can restore the stock
    await q(`update shop.skus set lifecycle = 'active' where sku_id = 'S1'`);
    await until({ reason: 'eligible', fc: 'F2' }, 'rebuilt and eligible');
    expect(await eventually(skuInSync, 10_000, 'S1 to match the source')).toBe(true);
    const rebuild = pipeline.temporal.client.workflow.getHandle(skuRebuildWorkflowId('S1'));
    expect(await rebuild.result()).toEqual({ rows: 3 }); // the skus row and two inventory rows
    expect(await c.redis.ttl(c.keys.sku('S1'))).toBe(-1);
  });

  // Only a lost key asks for a rebuild: a SKU that simply has no stock (the freshness probes of
  // the benchmarks) flips between discontinued and paused with none, answered at once each time.
  it('a SKU without stock flipped between discontinued and paused asks for no rebuild', async () => {
    await q(`insert into shop.skus (sku_id, title, lifecycle) values ('NS', 't', 'paused')`);
    for (const lifecycle of ['discontinued', 'paused', 'discontinued', 'paused']) {
      await q(`update shop.skus set lifecycle = $1 where sku_id = 'NS'`, [lifecycle]);
      await eventually(
        async () => (await get(`${pipeline.api.base}/v1/badges/NS?region=R1`)).body.reason === lifecycle,
        10_000,
        `NS ${lifecycle}`,
      );
    }
    expect(await c.redis.smembers(c.keys.ofSku('NS').rebuilds)).toEqual([]);
    const described = await pipeline.temporal.client.workflow
      .getHandle(skuRebuildWorkflowId('NS'))
      .describe()
      .catch(() => null);
    expect(described).toBeNull();
  });

  // A repair, a dead-letter retry or a replay re-emits the skus row alone (a refresh, R): on the
  // expired key it writes the discontinued lifecycle as D, so the reactivation still rebuilds.
  it('re-read alone while discontinued after the tombstone expired, then reactivated: rebuilt too', async () => {
    await q(`update shop.skus set lifecycle = 'discontinued' where sku_id = 'S1'`);
    await until({ reason: 'discontinued' }, 'discontinued');
    await until({ reason: 'unknown' }, 'tombstone expiry', (TTL_S + 5) * 1000);
    await sourceRowsFor(c.config, c.pool).refresh([{ tbl: 'skus', key: 'S1' }]);
    await until({ reason: 'discontinued' }, 'the refresh applied');
    expect(await c.redis.hget(c.keys.sku('S1'), '#')).toMatch(/^D\|/);
    await q(`update shop.skus set lifecycle = 'active' where sku_id = 'S1'`);
    await until({ reason: 'eligible' }, 'rebuilt and eligible');
    expect(await eventually(skuInSync, 10_000, 'S1 to match the source')).toBe(true);
  });

  it('edited while discontinued after the tombstone expired, then reactivated: rebuilt too', async () => {
    await q(`update shop.skus set lifecycle = 'discontinued' where sku_id = 'S1'`);
    await until({ reason: 'discontinued' }, 'discontinued');
    await until({ reason: 'unknown' }, 'tombstone expiry', (TTL_S + 5) * 1000);
    // a title edit: the still discontinued lifecycle lands in a new key, without any stock
    await q(`update shop.skus set title = 'renamed' where sku_id = 'S1'`);
    await until({ reason: 'discontinued' }, 'the edit applied');
    expect(await c.redis.hkeys(c.keys.sku('S1'))).toEqual(['#']);
    // written as D: discontinued, its stock lost with the key (store/lua/apply.lua)
    expect(await c.redis.hget(c.keys.sku('S1'), '#')).toMatch(/^D\|/);
    await q(`update shop.skus set lifecycle = 'active' where sku_id = 'S1'`);
    // (without the rebuild the store would answer out_of_stock, fresh, for good)
    await until({ reason: 'eligible' }, 'rebuilt and eligible');
    expect(await eventually(skuInSync, 10_000, 'S1 to match the source')).toBe(true);
  });
});
