/**
 * A change waiting in the dead letters is missing from the store, so reads that depend on it must
 * not answer fresh from the store's older value (store/held.ts): a SKU's change makes that SKU
 * `unknown`, an order's or an FC's makes the reads of the regions that FC serves stale. A retry
 * that applies, or a discard, gives the reads back; a retry that fails again keeps them held.
 */
import { describe, expect, it } from 'vitest';
import { createBadgeReader } from '../../serving/badge-reader';
import { usePipeline } from '../support/pipeline-fixture';
import { seedMinimal } from '../support/source';
import { utcDay } from '../../features/definitions';
import { monitorStore } from '../support/store-monitor';
import { activitiesFor } from '../support/activities';
import { pipelineClients } from '../support/env';
import { rebuildStore } from '../../store/rebuild';
import { BACKFILL_TABLES } from '../../activities/backfill/backfill';

const owner = 'dead-letter-holds-test';
const { c, acts } = usePipeline('dead-letter-holds', { lease: owner });

async function drainAll() {
  for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') return;
}
const reader = () =>
  createBadgeReader({
    redis: c.redis,
    prefix: c.keys.prefix,
    partitions: c.keys.partitions.length,
    staleAfterMs: 60_000,
  });
/** The dead letters of a change (one per drain shard for a change every shard reads). */
const lettersOf = async (key: string): Promise<string[]> =>
  (await c.pool.query(`select id::text from pipeline.dead_letters where key = $1 order by id`, [key])).rows.map(
    (r) => r.id,
  );

describe('waiting dead letters hold reads back', () => {
  it("a SKU's change makes the SKU unknown, an order's makes its FC's region stale, until settled", async () => {
    await seedMinimal(c.pool);
    await drainAll();
    const read = async () => reader().getBadges('R1', ['S1', 'S2']);
    const before = await read();
    expect(before.stale).toBe(false);
    expect(before.badges.map((b) => b.reason)).not.toContain('unknown');

    // a skus change the drain cannot apply (a lifecycle the contract does not have)
    await c.pool.query(
      `insert into pipeline.outbox (tbl, op, key, image) values ('skus', 'U', 'S1', '{"sku_id": "S1", "lifecycle": "sideways"}')`,
    );
    await drainAll();
    let r = await read();
    expect(r.stale).toBe(false);
    expect(r.badges.map((b) => [b.sku, b.reason === 'unknown'])).toEqual([
      ['S1', true],
      ['S2', false],
    ]);

    // an order of F2 the drain cannot apply: F2's load is not the source's, R1's reads are stale
    await c.pool.query(`insert into pipeline.outbox (tbl, op, key, image) values ('orders', 'I', '99', $1)`, [
      JSON.stringify({
        order_id: 99,
        sku_id: 'S2',
        fc_id: 'F2',
        qty: 0, // not an order the contract allows (qty > 0)
        status: 'placed',
        placed_at: new Date().toISOString(),
      }),
    ]);
    await drainAll();
    expect((await read()).stale).toBe(true);

    // discarded: the operator gave it up; R1 answers from the store again
    const discarded = await acts.discardDeadLetters({ ids: await lettersOf('99'), by: 'test@holds' });
    expect(discarded.released).toBeGreaterThan(0);
    expect((await read()).stale).toBe(false);

    // a retry that fails again keeps S1 held; a discard lets it go
    const ids = await lettersOf('S1');
    expect(await acts.retryDeadLetters({ ids })).toMatchObject({ retried: 0, failed: ids.length });
    r = await read();
    expect(r.badges.find((b) => b.sku === 'S1')!.reason).toBe('unknown');
    await acts.discardDeadLetters({ ids, by: 'test@holds' });
    r = await read();
    expect(r.stale).toBe(false);
    expect(r.badges.map((b) => b.reason)).not.toContain('unknown');
  });

  // A Redis file written after the call that moves the store's position past a dead-lettered change
  // and before its hold would, restored after the letter's retry, answer fresh without the change.
  it("a change the drain cannot read is held before the apply call that moves the store's position past it", async () => {
    await seedMinimal(c.pool);
    await drainAll();
    await c.pool.query(
      `insert into pipeline.outbox (tbl, op, key, image) values ('skus', 'U', 'S1', '{"sku_id": "S1", "lifecycle": "sideways"}')`,
    );
    const seen: string[] = [];
    const heldKeys = new Set(c.keys.partitions.map((p) => p.held));
    const monitor = await monitorStore(c.redis, (args, source) => {
      const cmd = String(args[0]).toLowerCase();
      if (cmd === 'hset' && heldKeys.has(args[1]!) && !source.includes('lua')) seen.push('hold');
      if (['evalsha', 'eval'].includes(cmd)) {
        const argv = args.slice(3 + Number(args[2]));
        if (argv[2] === 'drain' && argv[4] !== '') seen.push('apply with a position');
      }
    });
    await drainAll();
    await monitor.stop();
    expect(await lettersOf('S1')).not.toEqual([]);
    expect(seen).toContain('apply with a position');
    expect(seen[0]).toBe('hold');
  });

  // A backfill that Redis rejects fails (and is retried): no letter would ever name a hold of its.
  it('a backfill chunk Redis rejects fails, and holds nothing', async () => {
    await seedMinimal(c.pool);
    await drainAll();
    await c.redis.del(c.keys.sku('S1'));
    await c.redis.rpush(c.keys.sku('S1'), 'not a hash'); // a key of the wrong type
    await expect(acts.backfillChunk({ table: 'skus', after: null, limit: 100 })).rejects.toThrow(/rejected/);
    for (const p of c.keys.partitions) expect(await c.redis.hkeys(p.held)).toEqual([]);
    await c.redis.del(c.keys.sku('S1'));
  });

  // A rebuild (a TRUNCATE, a lost slot, a store found ahead) empties the holds with the rest, and
  // the refill does not bring back a dead-lettered change (the fill skips a malformed source row):
  // the letter's hold is written again before the refilled store is complete.
  it('a rebuild and the refill after it keep what a waiting letter holds', async () => {
    await seedMinimal(c.pool);
    await drainAll();
    await c.pool.query(
      `insert into pipeline.outbox (tbl, op, key, image) values ('skus', 'U', 'S1', '{"sku_id": "S1", "lifecycle": "sideways"}')`,
    );
    await drainAll();
    expect(await lettersOf('S1')).not.toEqual([]);
    await rebuildStore(c.redis, c.keys, null);
    await drainAll();
    for (const table of BACKFILL_TABLES)
      for (let after: string[] | null = null, first = true; first || after; first = false)
        after = (await acts.backfillChunk({ table, after, limit: 100 })).last;
    await acts.backfillLoads({});
    await acts.finishBackfill({ epoch: 'after-rebuild' });
    await c.pool.query(`insert into shop.skus values ('S9', 't', 'active', now())`);
    await drainAll(); // (the watermark, gone with the rest, written again)
    const r = await reader().getBadges('R1', ['S1', 'S2']);
    expect(r.stale).toBe(false);
    expect(r.badges.map((b) => [b.sku, b.reason === 'unknown'])).toEqual([
      ['S1', true],
      ['S2', false],
    ]);
  });

  it('a retry that applies gives the reads back, and a hold no letter names is released by compaction', async () => {
    await seedMinimal(c.pool);
    await drainAll();
    // an order Redis rejects: F2's load counters of today made strings (a wrong key type)
    const loads = c.keys.partitions.map((p) => p.load('F2', utcDay(new Date())));
    for (const key of loads) await c.redis.set(key, 'not a hash');
    await c.pool.query(`insert into shop.orders (sku_id, fc_id, qty, status) values ('S1', 'F2', 1, 'placed')`);
    await drainAll();
    // the keys mended: F2's load reads 0 without the order; a fresh answer would count it nowhere
    for (const key of loads) await c.redis.del(key);
    expect((await reader().getBadges('R1', ['S1'])).stale).toBe(true);
    const retried = await acts.retryDeadLetters({});
    expect(retried.retried).toBeGreaterThan(0);
    expect(retried.failed).toBe(0);
    expect((await reader().getBadges('R1', ['S1'])).stale).toBe(false);

    // a letter waiting from before holds existed (or whose hold a crash lost): held again by
    // compaction (and at worker start)
    await c.pool.query(
      `insert into pipeline.outbox (tbl, op, key, image) values ('skus', 'U', 'S2', '{"sku_id": "S2", "lifecycle": "x"}')`,
    );
    await drainAll();
    for (const q of c.keys.partitions) await c.redis.del(q.held);
    expect((await reader().getBadges('R1', ['S2'])).badges[0]!.reason).not.toBe('unknown');
    await acts.sweepTombstones({});
    expect((await reader().getBadges('R1', ['S2'])).badges[0]!.reason).toBe('unknown');
    await acts.discardDeadLetters({ ids: await lettersOf('S2'), by: 'test@holds' });

    // a hold whose drain died before committing its letter: none names it; old enough, it goes
    const p = c.keys.ofSku('S1');
    await c.redis.hset(p.held, 's:S1', String(Date.now() - 11 * 60_000), 's:S2', String(Date.now()));
    expect(await acts.sweepTombstones({})).toMatchObject({ heldReleased: 1 });
    expect(await c.redis.hkeys(p.held)).toEqual(['s:S2']); // too young: its letter may not be committed yet
  });

  it('a hold no waiting letter names is released by the drain as well, once old enough, without waiting for compaction', async () => {
    await seedMinimal(c.pool);
    await drainAll();
    // S2's change waits in the dead letters (an image the drain cannot read): S2 held by its letter
    await c.pool.query(
      `insert into pipeline.outbox (tbl, op, key, image) values ('skus', 'U', 'S2', '{"sku_id": "S2", "lifecycle": "x"}')`,
    );
    await drainAll();
    expect(await lettersOf('S2')).not.toEqual([]);
    // S1's hold: a drain pass that died after holding a change and before committing its letter,
    // the change since delivered again and applied. Both holds made older than HELD_SETTLE_MS.
    const old = String(Date.now() - 11 * 60_000);
    await c.redis.hset(c.keys.ofSku('S1').held, 's:S1', old);
    await c.redis.hset(c.keys.ofSku('S2').held, 's:S2', old);
    const unknown = async () =>
      (await reader().getBadges('R1', ['S1', 'S2'])).badges.filter((b) => b.reason === 'unknown').map((b) => b.sku);
    expect(await unknown()).toEqual(['S1', 'S2']);
    // a worker's drain (its first activity asks; later ones at most once a minute)
    const drain = activitiesFor(pipelineClients(c));
    await drain.acquireDrainLease({ owner });
    await drain.drainBatch({ owner });
    expect(await unknown()).toEqual(['S2']); // S2's letter still waits: its hold stays
    expect(await c.redis.hget(c.keys.ofSku('S2').held, 's:S2')).toBe(old);
  });
});
