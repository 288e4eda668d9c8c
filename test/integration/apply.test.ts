/** The versioned apply against real Redis: duplicates and older changes have no effect. */
import { LIFECYCLE_FIELD } from '../../store/keys';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { utcDay, type FeatureUpdate } from '../../features/definitions';
import { applyOps, applyUpdates, StoreOp } from '../../store/apply';
import { resetState, testClients } from '../support/env';

// Days inside the window the store keeps (a counter lives until its day's end plus LOAD_TTL_S)
const [DAY0, DAY1, DAY2, DAY3] = [0, 1, 2, 3].map((n) => utcDay(new Date(Date.now() + n * 86_400_000)));

const c = testClients();
afterAll(() => c.close());
beforeEach(() => resetState(c));

const opts = { chunk: 2, tombstoneTtlS: 3600, loadTtlS: 7200 };
const batch = (updates: FeatureUpdate[]) => updates.map((update, source) => ({ update, source }));
async function dump(): Promise<Record<string, Record<string, string>>> {
  const out: Record<string, Record<string, string>> = {};
  for (const k of (await c.redis.keys(`${c.keys.prefix}*`)).sort())
    if ((await c.redis.type(k)) === 'hash') out[k] = await c.redis.hgetall(k);
  return out;
}

const sample: FeatureUpdate[] = [
  { feature: 'sku.lifecycle', sku: 'S1', value: 'active', version: 5, txid: '1' },
  { feature: 'sku.available', sku: 'S1', fc: 'F1', value: 7, version: 6, txid: '1' },
  { feature: 'fc.capacity', fc: 'F1', value: 100, version: 7, txid: '1' },
  { feature: 'region.rank', region: 'R1', fc: 'F1', value: 1, version: 8, txid: '1' },
  { feature: 'fc.load', fc: 'F1', day: DAY0, delta: 3, txid: '100', id: 9 },
  { feature: 'fc.load', fc: 'F1', day: DAY0, delta: 2, txid: '101', id: 4 },
];

describe('applyUpdates', () => {
  it('applies a batch once; the same batch again changes nothing', async () => {
    const first = await applyUpdates(c.redis, c.keys, batch(sample), opts);
    expect(first.applied).toBe(6);
    const after = await dump();
    expect(after[c.keys.sku('S1')]).toEqual({ [LIFECYCLE_FIELD]: 'a|5', F1: '7|6' });
    expect(after[c.keys.partitions[0].load('F1', DAY0)].n).toBe('5');
    const again = await applyUpdates(c.redis, c.keys, batch(sample), opts);
    expect(again.applied).toBe(0);
    expect(await dump()).toEqual(after);
  });

  it('ignores an older change that arrives after a newer one', async () => {
    await applyUpdates(
      c.redis,
      c.keys,
      batch([
        { feature: 'sku.available', sku: 'S1', fc: 'F1', value: 3, version: 20, txid: '1' },
        { feature: 'fc.load', fc: 'F1', day: DAY0, delta: 4, txid: '200', id: 50 },
      ]),
      opts,
    );
    const before = await dump();
    const r = await applyUpdates(
      c.redis,
      c.keys,
      batch([
        { feature: 'sku.available', sku: 'S1', fc: 'F1', value: 99, version: 19, txid: '1' },
        { feature: 'fc.load', fc: 'F1', day: DAY0, delta: 10, txid: '199', id: 60 },
        { feature: 'fc.load', fc: 'F1', day: DAY0, delta: 10, txid: '200', id: 49 },
      ]),
      opts,
    );
    expect(r.applied).toBe(0);
    expect(await dump()).toEqual(before);
  });

  it('a delete leaves a versioned tombstone that fences off an older late change', async () => {
    await applyUpdates(
      c.redis,
      c.keys,
      batch([{ feature: 'sku.available', sku: 'S1', fc: 'F1', value: null, version: 30, txid: '1' }]),
      opts,
    );
    await applyUpdates(
      c.redis,
      c.keys,
      batch([{ feature: 'sku.available', sku: 'S1', fc: 'F1', value: 8, version: 29, txid: '1' }]),
      opts,
    );
    expect(await c.redis.hget(c.keys.sku('S1'), 'F1')).toBe('x|30');
    await applyUpdates(
      c.redis,
      c.keys,
      batch([{ feature: 'sku.available', sku: 'S1', fc: 'F1', value: 8, version: 31, txid: '1' }]),
      opts,
    );
    expect(await c.redis.hget(c.keys.sku('S1'), 'F1')).toBe('8|31');
  });

  it('a deleted SKU expires after the tombstone TTL; re-creating it clears the TTL', async () => {
    await applyUpdates(
      c.redis,
      c.keys,
      batch([{ feature: 'sku.lifecycle', sku: 'S1', value: null, version: 40, txid: '1' }]),
      opts,
    );
    expect(await c.redis.ttl(c.keys.sku('S1'))).toBeGreaterThan(3000);
    await applyUpdates(
      c.redis,
      c.keys,
      batch([{ feature: 'sku.lifecycle', sku: 'S1', value: 'active', version: 41, txid: '1' }]),
      opts,
    );
    expect(await c.redis.ttl(c.keys.sku('S1'))).toBe(-1);
  });

  // A key that lost its lifecycle (expired after its tombstone) lost its stock with it. An update
  // making the SKU active or paused asks for a rebuild; an update or a refresh (R: a repair, a
  // backfill's re-read) of a discontinued one marks it D so its reactivation will. A refresh asks
  // for no rebuild (a backfill re-reads all stock). Not while the partition is refilled.
  it('an update on a lost key asks for a rebuild, an update or refresh marks it D, except while the partition is refilled', async () => {
    const sku = (id: string, value: 'active' | 'discontinued', version: number, flag: 'update' | 'refresh') =>
      ({ feature: 'sku.lifecycle', sku: id, value, version, txid: '1', [flag]: true }) as FeatureUpdate;
    const apply = (...updates: FeatureUpdate[]) => applyUpdates(c.redis, c.keys, batch(updates), opts);
    const lifecycleOf = (id: string) => c.redis.hget(c.keys.sku(id), LIFECYCLE_FIELD);
    const r = await apply(
      sku('U1', 'active', 10, 'update'),
      sku('R1', 'active', 11, 'refresh'),
      sku('R2', 'discontinued', 12, 'refresh'),
    );
    expect(r.rebuild).toEqual([0]);
    expect(await lifecycleOf('R2')).toBe('D|12');
    // D stays D under another discontinued write, and its reactivation asks for the rebuild
    await apply(sku('R2', 'discontinued', 13, 'update'));
    expect(await lifecycleOf('R2')).toBe('D|13');
    expect((await apply(sku('R2', 'active', 14, 'update'))).rebuild).toEqual([0]);
    // a partition being refilled (no epoch): neither
    for (const p of c.keys.partitions) await c.redis.del(p.epoch);
    const refill = await apply(
      sku('U3', 'active', 20, 'update'),
      sku('R3', 'active', 21, 'refresh'),
      sku('R4', 'discontinued', 22, 'refresh'),
    );
    expect(refill.rebuild).toEqual([]);
    expect(await lifecycleOf('R4')).toBe('d|22');
  });

  it('reports a key Redis rejects without failing the rest of the batch', async () => {
    await c.redis.set(c.keys.sku('BAD'), 'not a hash');
    const r = await applyUpdates(
      c.redis,
      c.keys,
      batch([
        { feature: 'sku.lifecycle', sku: 'BAD', value: 'active', version: 1, txid: '1' },
        { feature: 'sku.lifecycle', sku: 'OK', value: 'active', version: 2, txid: '1' },
      ]),
      opts,
    );
    expect(r.failures).toEqual([
      { source: 0, error: expect.stringMatching(/WRONGTYPE/), key: c.keys.sku('BAD'), kind: 'lifecycle' },
    ]);
    expect(await c.redis.hget(c.keys.sku('OK'), LIFECYCLE_FIELD)).toBe('a|2');
  });

  // The drain holds a rejected change's subjects after the call; the call holds them itself too,
  // with the position it writes, so no Redis file has that position without the hold.
  it("holds what a rejected drain operation's key holds in the same call: its SKU, its FC", async () => {
    await c.redis.set(c.keys.sku('BAD'), 'not a hash');
    const load = c.keys.partitions[0].load('F:9', DAY0); // (an FC id with a colon in it)
    await c.redis.rpush(load, 'x');
    const held = async () => Object.keys(await c.redis.hgetall(c.keys.partitions[0].held)).sort();
    const rejected = batch([
      { feature: 'sku.lifecycle', sku: 'BAD', value: 'active', version: 1, txid: '1' },
      { feature: 'fc.load', fc: 'F:9', day: DAY0, delta: 1, txid: '2', id: 3 },
    ]);
    // a replay's or a retry's failure leaves no new letter, a backfill's fails the backfill: nothing to hold
    for (const mode of ['replay', 'retry', 'backfill'] as const) {
      await applyUpdates(c.redis, c.keys, rejected, { ...opts, mode });
      expect(await held()).toEqual([]);
    }
    const r = await applyUpdates(c.redis, c.keys, rejected, {
      ...opts,
      batch: '1',
      position: { batch: '1', txid: '2', id: '3' },
    });
    expect(r.failures.map((f) => f.source)).toEqual([0, 1]);
    expect(await held()).toEqual(['f:F:9', 's:BAD']);
    const at = Number(await c.redis.hget(c.keys.partitions[0].held, 's:BAD'));
    expect(Math.abs(at - Date.now())).toBeLessThan(60_000); // when, in ms: how compaction ages it
  });
});

describe('backfill values and snapshots', () => {
  beforeEach(() => resetState(c));
  const snap = async (text: string) => {
    const k = await c.redis.incr(c.keys.snapSeq);
    await c.redis.hset(c.keys.partitions[0].snaps, String(k), text);
    return String(k);
  };
  const apply = (ops: Parameters<typeof applyOps>[2], mode: 'drain' | 'replay' = 'drain') =>
    applyOps(c.redis, c.keys, ops, { ...opts, mode });

  it('a backfill fills only absent fields; a change the snapshot saw loses, one it did not see wins', async () => {
    const k = await snap('100:110:105,107'); // saw txids < 100 and 100..109 except 105, 107
    await applyUpdates(
      c.redis,
      c.keys,
      batch([{ feature: 'sku.available', sku: 'S1', fc: 'F2', value: 9, version: 50, txid: '90' }]),
      opts,
    );
    const fill = (fc: string, value: string): StoreOp => ({
      kind: 'fill',
      key: c.keys.sku('S1'),
      field: fc,
      value,
      snapshot: `s${k}`,
      rule: 'stock',
      source: 0,
    });
    const r = await apply([fill('F1', '4'), fill('F2', '1')]);
    expect(r.applied).toBe(1);
    expect(await c.redis.hgetall(c.keys.sku('S1'))).toEqual({ F1: `4|s${k}`, F2: '9|50' }); // F2 kept: the drain wrote it
    const change = (txid: string, value: number, version: number) =>
      batch([{ feature: 'sku.available', sku: 'S1', fc: 'F1', value, version, txid }]);
    await applyUpdates(c.redis, c.keys, change('103', 7, 60), opts); // seen by the snapshot: older than the filled value
    expect(await c.redis.hget(c.keys.sku('S1'), 'F1')).toBe(`4|s${k}`);
    await applyUpdates(c.redis, c.keys, change('105', 8, 61), opts); // in progress at the snapshot: newer
    expect(await c.redis.hget(c.keys.sku('S1'), 'F1')).toBe('8|61');
  });

  // A manual backfill keeps the epoch: a discontinued SKU whose lifecycle it fills had lost its key
  // (and stock), so it is marked D for its reactivation to rebuild; a refill (no epoch) is not.
  it('a discontinued lifecycle filled into a complete partition is marked D, into a refilled one not', async () => {
    const k = await snap('100:100:');
    const fill = (sku: string): StoreOp => ({
      kind: 'fill',
      key: c.keys.sku(sku),
      field: LIFECYCLE_FIELD,
      value: 'd',
      snapshot: `s${k}`,
      rule: 'lifecycle',
      source: 0,
    });
    await apply([fill('K1')]);
    expect(await c.redis.hget(c.keys.sku('K1'), LIFECYCLE_FIELD)).toBe(`D|s${k}`);
    expect(await c.redis.ttl(c.keys.sku('K1'))).toBeGreaterThan(0);
    const reactivated = await applyUpdates(
      c.redis,
      c.keys,
      batch([{ feature: 'sku.lifecycle', sku: 'K1', value: 'active', version: 5, txid: '120', update: true }]),
      opts,
    );
    expect(reactivated.rebuild).toEqual([0]);
    for (const p of c.keys.partitions) await c.redis.del(p.epoch);
    await apply([fill('K2')]);
    expect(await c.redis.hget(c.keys.sku('K2'), LIFECYCLE_FIELD)).toBe(`d|s${k}`);
  });

  it('a counter set from a snapshot skips deltas it already counted and takes the rest', async () => {
    const k = await snap('200:210:204');
    const key = c.keys.partitions[0].load('F1', DAY0);
    await apply([{ kind: 'loadSet', key, count: '10', position: '1:150:7', snapshot: k, source: 0 }]);
    const delta = (txid: string, id: number, d: number): FeatureUpdate => ({
      feature: 'fc.load',
      fc: 'F1',
      day: DAY0,
      delta: d,
      txid,
      id,
    });
    await applyUpdates(
      c.redis,
      c.keys,
      batch([delta('150', 7, 100), delta('201', 90, 100), delta('204', 91, 1), delta('230', 92, 2)]),
      { ...opts, batch: '1' },
    );
    expect(await c.redis.hget(key, 'n')).toBe('13'); // 10 + 1 (txid 204 not seen) + 2 (txid 230 after it)
  });

  it('load deltas are ordered by (batch, txid, id): a later batch may carry a lower txid', async () => {
    const key = c.keys.partitions[0].load('F1', DAY1);
    const delta = (txid: string, id: number, d: number): FeatureUpdate => ({
      feature: 'fc.load',
      fc: 'F1',
      day: DAY1,
      delta: d,
      txid,
      id,
    });
    await applyUpdates(c.redis, c.keys, batch([delta('500', 10, 1), delta('520', 11, 2)]), { ...opts, batch: '7' });
    // Batch 8 holds a transaction that was open during batch 7 (lower txid, committed later).
    await applyUpdates(c.redis, c.keys, batch([delta('480', 9, 4)]), { ...opts, batch: '8' });
    expect(await c.redis.hget(key, 'n')).toBe('7');
    // Batch 7 delivered again (a crash before its cursor commit was seen): nothing counted twice.
    await applyUpdates(c.redis, c.keys, batch([delta('500', 10, 1), delta('520', 11, 2)]), { ...opts, batch: '7' });
    await applyUpdates(c.redis, c.keys, batch([delta('480', 9, 4)]), { ...opts, batch: '8' });
    expect(await c.redis.hget(key, 'n')).toBe('7');
    expect(await c.redis.hmget(key, 'b', 't', 'i')).toEqual(['8', '480', '9']);
  });

  it('the deltas of one counter go in one operation, each still checked: a retry after a partial apply counts only the rest', async () => {
    const key = c.keys.partitions[0].load('F1', DAY3);
    await c.redis.hset(key, 'n', '5', 'b', '1', 't', '500', 'i', '11'); // an earlier attempt got this far
    const delta = (txid: string, id: number, d: number): FeatureUpdate => ({
      feature: 'fc.load',
      fc: 'F1',
      day: DAY3,
      delta: d,
      txid,
      id,
    });
    const r = await applyUpdates(
      c.redis,
      c.keys,
      batch([delta('500', 10, 1), delta('500', 11, 2), delta('510', 12, 4), delta('511', 13, -1)]),
      { ...opts, batch: '1' },
    );
    expect(await c.redis.hget(key, 'n')).toBe('8'); // 5 + 4 - 1
    expect(await c.redis.hmget(key, 'b', 't', 'i')).toEqual(['1', '511', '13']);
    expect(r).toMatchObject({ applied: 2, sent: 4 });
    // A key of the wrong type: every delta of the merged operation is reported, by its source.
    const broken = c.keys.partitions[0].load('F2', DAY3);
    await c.redis.rpush(broken, 'x');
    const failed = await applyUpdates(
      c.redis,
      c.keys,
      batch([
        { feature: 'fc.load', fc: 'F2', day: DAY3, delta: 1, txid: '600', id: 20 },
        { feature: 'fc.load', fc: 'F2', day: DAY3, delta: 2, txid: '601', id: 21 },
      ]),
      { ...opts, batch: '2' },
    );
    expect(failed.failures.map((f) => [f.source, f.kind, f.key])).toEqual([
      [0, 'loadDelta', broken],
      [1, 'loadDelta', broken],
    ]);
  });

  it('a counter written before the upgrade (no batch) is still guarded by (txid, id)', async () => {
    const key = c.keys.partitions[0].load('F1', DAY2);
    await c.redis.hset(key, 'n', '5', 't', '300', 'i', '40'); // what the horizon drain left
    const delta = (txid: string, id: number, d: number): FeatureUpdate => ({
      feature: 'fc.load',
      fc: 'F1',
      day: DAY2,
      delta: d,
      txid,
      id,
    });
    await applyUpdates(c.redis, c.keys, batch([delta('300', 40, 5), delta('300', 41, 1), delta('310', 42, 2)]), {
      ...opts,
      batch: '1',
    });
    expect(await c.redis.hget(key, 'n')).toBe('8');
    expect(await c.redis.hmget(key, 'b', 't', 'i')).toEqual(['1', '310', '42']);
  });

  it('replay mode re-writes a value of the same version; drain mode does not', async () => {
    await applyUpdates(
      c.redis,
      c.keys,
      batch([{ feature: 'fc.capacity', fc: 'F1', value: 1, version: 5, txid: '1' }]),
      opts,
    );
    await c.redis.hset(c.keys.partitions[0].fc('F1'), 'c', '999|5'); // as if written by faulty logic
    const same = batch([{ feature: 'fc.capacity', fc: 'F1', value: 1, version: 5, txid: '1' }]);
    await applyUpdates(c.redis, c.keys, same, opts);
    expect(await c.redis.hget(c.keys.partitions[0].fc('F1'), 'c')).toBe('999|5');
    await applyUpdates(c.redis, c.keys, same, { ...opts, mode: 'replay' });
    expect(await c.redis.hget(c.keys.partitions[0].fc('F1'), 'c')).toBe('1|5');
  });

  it('a dead-letter retry of a load delta applies once per dead letter', async () => {
    const key = c.keys.partitions[0].load('F1', DAY0);
    const op: StoreOp = { kind: 'loadRetry', key, delta: 3, mark: '42', txid: '', id: '', source: 0 };
    await apply([op]);
    await apply([op]);
    expect(await c.redis.hget(key, 'n')).toBe('3');
  });

  it('a retried load delta is not added to a load set from the outbox that came after it, and is to one before it', async () => {
    const key = c.keys.partitions[0].load('F1', DAY0);
    const retry = (mark: string, txid: string, id: string, delta = 3): StoreOp => ({
      kind: 'loadRetry',
      key,
      delta,
      mark,
      txid,
      id,
      source: 0,
    });
    // a load set re-read from a source captured from the WAL, at outbox position (150, 7)
    await apply([{ kind: 'loadSet', key, count: '10', position: '3:150:7', snapshot: '', source: 0 }]);
    await apply([retry('same-write-before', '150', '6'), retry('earlier-write', '149', '99')]);
    expect(await c.redis.hget(key, 'n')).toBe('10'); // the set counted both already
    await apply([retry('same-write-after', '150', '8', 2), retry('later-write', '151', '1', 1)]);
    expect(await c.redis.hget(key, 'n')).toBe('13');
    // a backfill's set (its snapshot says what it saw) replaces the position: a change it did not see is added
    await c.redis.hset(c.keys.partitions[0].snaps, '1', '100:100:');
    await apply([{ kind: 'loadSet', key, count: '20', position: '3:200:1', snapshot: '1', source: 0 }]);
    expect(await c.redis.hget(key, 'st')).toBeNull();
    await apply([retry('unseen-by-snapshot', '140', '1')]);
    expect(await c.redis.hget(key, 'n')).toBe('23');
  });

  // Op Z, a refill of the loads that names every FC and day from its first day on that is not 0.
  const p0 = () => c.keys.partitions[0];
  const loadOp = (fc: string, day: string, delta: number, at: string): StoreOp => {
    const [b, txid, id] = at.split(':');
    return { kind: 'loadDelta', key: p0().load(fc, day), delta, txid, id: Number(id), batch: b, source: 0 };
  };
  const complete = (from: string, position: string, snapshot: string): StoreOp => ({
    kind: 'loadsComplete',
    key: p0().loadIndex,
    from,
    position,
    snapshot,
    source: 0,
  });
  const count = (fc: string, day: string) => c.redis.hget(p0().load(fc, day), 'n');

  it('a complete refill of the loads zeroes the counters from its first day written before it, and no others', async () => {
    const k = await snap('200:200:');
    await apply([
      loadOp('F1', DAY0, 5, '1:100:1'),
      loadOp('F1', DAY1, -4, '1:101:2'),
      loadOp('F2', DAY2, 3, '3:300:1'),
    ]);
    await apply([loadOp('F6', DAY1, -2, '2:200:1')]); // the drain's last delivery, at the backfill's position
    // the backfill's own set, at its position: left as it is
    await apply([
      { kind: 'loadSet', key: p0().load('F5', DAY1), count: '9', position: '2:200:1', snapshot: k, source: 0 },
    ]);
    await apply([complete(DAY1, '2:200:1', k)]);
    expect(await count('F5', DAY1)).toBe('9');
    expect(await count('F6', DAY1)).toBe('0'); // the snapshot saw it (the backfill checks), and names it nowhere
    expect(await count('F1', DAY0)).toBe('5'); // before the refill's first day: it did not read it
    expect(await count('F1', DAY1)).toBe('0'); // the refill named it nowhere: 0 as of it
    expect(await count('F2', DAY2)).toBe('3'); // written after the refill's position
  });

  it('a counter absent after a complete refill starts at 0 as of it: a change the refill saw is not added again', async () => {
    const k = await snap('150:160:155');
    await apply([complete(DAY1, '2:150:1', k)]);
    await apply([loadOp('F3', DAY1, -4, '2:140:9')]); // an order deleted before the refill's snapshot
    expect(await count('F3', DAY1)).toBe('0');
    await apply([loadOp('F3', DAY2, -4, '2:140:9'), loadOp('F3', DAY2, 1, '2:155:10')]); // (one M op)
    expect(await count('F3', DAY2)).toBe('1'); // txid 155 was in progress in the snapshot
    await apply([loadOp('F4', DAY0, -2, '2:140:11')]); // a day the refill did not read: as before
    expect(await count('F4', DAY0)).toBe('-2');
    // re-read from a source captured from the WAL (no snapshot: its place in the stream): a late
    // retry of a change before it is not added, one after it is
    await apply([complete(DAY0, '3:500:7', '')]);
    const retry = (fc: string, mark: string, txid: string, id: string): StoreOp => ({
      kind: 'loadRetry',
      key: p0().load(fc, DAY0),
      delta: 3,
      mark,
      txid,
      id,
      source: 0,
    });
    await apply([retry('F5', 'before', '500', '6'), retry('F6', 'after', '500', '8')]);
    expect([await count('F5', DAY0), await count('F6', DAY0)]).toEqual(['0', '3']);
  });

  // Under capture from the WAL the last set of a chunk says the loads are complete: the sets before
  // it, of the same outbox transaction, maybe applied in another call, keep their values (zeroed,
  // a named FC would read 0 until set again); a counter of another transaction is zeroed.
  it('a complete refill read between watermarks keeps its own sets, applied in calls before it', async () => {
    const set = (fc: string, at: string, n: string): StoreOp => ({
      kind: 'loadSet',
      key: p0().load(fc, DAY0),
      count: n,
      position: at,
      snapshot: '',
      source: 0,
    });
    await apply([loadOp('F9', DAY0, -4, '3:400:2')]); // a deleted order's delta, applied before the refill
    await apply([set('F8', '3:450:1', '5')]); // an earlier refill's set (another outbox transaction)
    await apply([set('F1', '3:500:5', '40')]);
    await apply([set('F2', '3:500:6', '7'), complete(DAY0, '3:500:6', '')]);
    expect([
      await count('F1', DAY0),
      await count('F2', DAY0),
      await count('F9', DAY0),
      await count('F8', DAY0),
    ]).toEqual(['40', '7', '0', '0']);
  });

  it('deltas of one counter on both sides of a complete refill are not merged across it', async () => {
    await apply([loadOp('F1', DAY0, 5, '1:100:1'), complete(DAY0, '1:100:2', ''), loadOp('F1', DAY0, 2, '1:100:3')]);
    expect(await count('F1', DAY0)).toBe('2');
  });

  it("the partition's load index holds its live counters: a counter past its time leaves it", async () => {
    const past = utcDay(new Date(Date.now() - 30 * 86_400_000));
    await apply([loadOp('F1', past, 1, '1:100:1')]); // gone at once: past its day and the load TTL
    expect(await c.redis.exists(p0().load('F1', past))).toBe(0);
    await apply([loadOp('F1', DAY0, 1, '1:100:2')]); // a new counter prunes the index
    expect(await c.redis.zrange(p0().loadIndex, '0', '-1')).toEqual([p0().load('F1', DAY0)]);
  });
});
