/**
 * A store in 4 partitions (on whatever Redis the run uses: one Redis, or the cluster): the guards
 * that keep a partition that lost writes from being written over or called fresh, the snapshot
 * numbers that must never be reused, a backfill that must not complete a partition rebuilt under
 * it, and a reader whose partition count differs from the drain's.
 */
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import type { FeatureUpdate } from '../../features/definitions';
import { finishBackfill, markBackfillStart } from '../../activities/backfill/backfill';
import { registerSnapshot } from '../../activities/backfill/snapshot';
import { createBadgeReader } from '../../serving/badge-reader';
import { applyUpdates } from '../../store/apply';
import { storeKeys } from '../../store/keys';
import { rebuildStore } from '../../store/rebuild';
import { DeliveryPosition, resetStorePosition } from '../../store/store-position';
import { markCaughtUp, PartitionBehindError, storeComplete } from '../../store/watermark';
import { resetState, testClients } from '../support/env';
import { FIELD } from '../../store/names';

const c = testClients({ STORE_PARTITIONS: process.env.TEST_STORE_PARTITIONS ?? '4' });
afterAll(() => c.close());
beforeEach(() => resetState(c));

const opts = { chunk: 100, tombstoneTtlS: 3600, loadTtlS: 7200 };
const at = (batch: number, txid: number, id: number): DeliveryPosition => ({
  batch: String(batch),
  txid: String(txid),
  id: String(id),
});
const stock = (sku: string, value: number, version: number): FeatureUpdate => ({
  feature: 'sku.available',
  sku,
  fc: 'F1',
  value,
  version,
  txid: String(version),
});

describe('store partitions', () => {
  it('a partition below the checked position refuses the apply and writes nothing', async () => {
    await resetStorePosition(c.redis, c.keys.partitions, at(5, 100, 10));
    // the partition of S1 "failed over" to a copy that never got batch 5
    const lost = c.keys.ofSku('S1');
    await resetStorePosition(c.redis, [lost], at(4, 90, 9));
    const updates = [{ update: stock('S1', 3, 11), source: 0 }];
    await expect(
      applyUpdates(c.redis, c.keys, updates, {
        ...opts,
        batch: '6',
        position: at(6, 101, 11),
        checked: at(5, 100, 10),
      }),
    ).rejects.toThrow(/FBBEHIND/);
    expect(await c.redis.hget(c.keys.sku('S1'), 'F1')).toBeNull();
    expect(await c.redis.hget(lost.pos, FIELD.appliedBatch)).toBe('4');
    // where the position holds, the same apply goes through
    await resetStorePosition(c.redis, [lost], at(5, 100, 10));
    await applyUpdates(c.redis, c.keys, updates, {
      ...opts,
      batch: '6',
      position: at(6, 101, 11),
      checked: at(5, 100, 10),
    });
    expect(await c.redis.hget(c.keys.sku('S1'), 'F1')).toBe('3|11');
    for (const p of c.keys.partitions) expect(await c.redis.hget(p.pos, FIELD.appliedBatch)).toBe('6');
  });

  it('the watermark is not moved where a partition is below the position it speaks for', async () => {
    await resetStorePosition(c.redis, c.keys.partitions, at(5, 100, 10));
    await resetStorePosition(c.redis, [c.keys.partitions[2]], at(3, 80, 1));
    await expect(markCaughtUp(c.redis, c.keys, Date.now(), 0, at(5, 100, 10))).rejects.toThrow(PartitionBehindError);
    expect(await c.redis.hget(c.keys.partitions[2].meta, FIELD.caughtUpAt)).toBeNull();
    await resetStorePosition(c.redis, [c.keys.partitions[2]], at(5, 100, 10));
    expect(await markCaughtUp(c.redis, c.keys, Date.now(), 0, at(5, 100, 10))).toBe(true);
  });

  it('never reuses a snapshot number another snapshot still has, even if the counter went back', async () => {
    const first = await registerSnapshot(c.redis, c.keys, { text: '100:110:105', xmin: 100n });
    const second = await registerSnapshot(c.redis, c.keys, { text: '200:210:', xmin: 200n });
    await c.redis.set(c.keys.snapSeq, '0'); // its node failed over to a replica that missed both INCRs
    const third = await registerSnapshot(c.redis, c.keys, { text: '300:300:', xmin: 300n });
    expect(new Set([first, second, third]).size).toBe(3);
    for (const p of c.keys.partitions) {
      expect(await c.redis.hget(p.snaps, first.slice(1))).toBe('100:110:105');
      expect(await c.redis.hget(p.snaps, second.slice(1))).toBe('200:210:');
      expect(await c.redis.hget(p.snaps, third.slice(1))).toBe('300:300:');
    }
  });

  it('a backfill does not complete a partition that was rebuilt while it ran', async () => {
    const partitions = c.keys.partitions;
    await rebuildStore(c.redis, c.keys, null); // every epoch gone: a backfill is needed
    await markBackfillStart(c.redis, c.keys, 'backfill-auto/run-1');
    await rebuildStore(c.redis, c.keys, { last: at(1, 1, 1), from: '1:1:' }, null, [partitions[1]]);
    const r = await finishBackfill(c.redis, c.keys, 'e1', 'backfill-auto/run-1');
    expect(r.incomplete).toEqual([1]);
    expect(await c.redis.exists(partitions[1].epoch)).toBe(0);
    expect(await c.redis.exists(partitions[0].epoch)).toBe(1);
    expect(await storeComplete(c.redis, c.keys)).toBe(false);
    // the next backfill completes it
    await markBackfillStart(c.redis, c.keys, 'backfill-auto/run-2');
    expect((await finishBackfill(c.redis, c.keys, 'e2', 'backfill-auto/run-2')).incomplete).toEqual([]);
    expect(await storeComplete(c.redis, c.keys)).toBe(true);
  });

  it('a reader configured with another partition count never answers fresh', async () => {
    await resetStorePosition(c.redis, c.keys.partitions, at(1, 1, 1));
    await markCaughtUp(c.redis, c.keys, Date.now(), 0, at(1, 1, 1));
    const reader = (partitions: number) =>
      createBadgeReader({ redis: c.redis, prefix: c.keys.prefix, partitions, staleAfterMs: 60_000 });
    expect((await reader(c.keys.partitions.length).getBadge('R1', 'S1')).stale).toBe(false);
    const other = c.keys.partitions.length * 2;
    expect(storeKeys(c.keys.prefix, other).partitions.length).toBe(other);
    expect((await reader(other).getBadge('R1', 'S1')).stale).toBe(true);
    expect((await reader(other).freshness()).stale).toBe(true);
  });
});
