/**
 * The drain batch against real Postgres and Redis: commit order, open and rolled-back
 * transactions, crash windows, dead letters, mutual exclusion.
 */
import { LIFECYCLE_FIELD } from '../../store/keys';
import { FIELD } from '../../store/names';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { activitiesFor } from '../support/activities';
import { usePipeline } from '../support/pipeline-fixture';
import { pipelineClients, TEST_DATABASE_URL, testClients } from '../support/env';
import { setTimeout as sleep } from 'node:timers/promises';
import { captured, LOGICAL_RUN, shopSession } from '../support/logical-run';
import { seedMinimal } from '../support/source';
import { backlog, restoreCursorRow, rewindCursor, saveCursorRow } from '../support/cursor';
import { drainLockName, drainShards, openTransactions } from '../../outbox';
import { shardOfPartition } from '../../outbox/shards';

const owner = 'test-drain';
const { c, acts } = usePipeline('drain-batch', { lease: owner });

async function drainAll() {
  let rows = 0;
  for (;;) {
    const r = await acts.drainBatch({ owner });
    rows += r.rows;
    if (r.outcome !== 'applied') return { ...r, rows };
  }
}

/** `count` SKU inserts (`<prefix>1` …) written straight into the outbox, in one transaction. */
const insertSkuChanges = (prefix: string, count: number) =>
  c.pool.query(
    `insert into pipeline.outbox (tbl, op, key, image)
     select 'skus', 'I', $1 || g, json_build_object('sku_id', $1 || g, 'title', 't', 'lifecycle', 'active')
     from generate_series(1, $2::int) g`,
    [prefix, count],
  );

/** A session of its own on the shop (in the logical run, routed to the source databases). */
const session = () => shopSession(c.pool);

const lifecycleOf = async (sku: string) => c.redis.hget(c.keys.sku(sku), LIFECYCLE_FIELD);

describe('drain batch', () => {
  it('never skips a transaction that commits after a later id was drained (reverse commit order)', async () => {
    const t1 = await session();
    const t2 = await session();
    try {
      // t2 takes its transaction id first, t1 second; t1 then writes first (lower outbox id) and
      // t2 second (higher id). t2 commits, the drain runs, then t1 commits: a cursor on the
      // outbox id alone would now be past t1's row and lose it.
      await t2.query('begin');
      await t2.query('select pg_current_xact_id()');
      await t1.query('begin');
      await t1.query('select pg_current_xact_id()');
      await t1.query(`insert into shop.skus (sku_id, title, lifecycle) values ('A', 'a', 'active')`);
      await t2.query(`insert into shop.skus (sku_id, title, lifecycle) values ('B', 'b', 'paused')`);
      const ids = (await c.pool.query(`select key, id from pipeline.outbox`)).rows; // nothing committed yet
      expect(ids).toEqual([]);
      await t2.query('commit');

      const mid = await drainAll();
      expect(mid.rows).toBe(1);
      expect(await lifecycleOf('B')).toMatch(/^p\|/);
      expect(await lifecycleOf('A')).toBeNull();

      await t1.query('commit');
      await captured();
      const order = (await c.pool.query(`select key, id::int from pipeline.outbox order by id`)).rows;
      // With the trigger capture A really has the lower id. Capture from the WAL writes in commit
      // order (B first): the case cannot arise there, and A must still come.
      expect(order.map((r) => r.key)).toEqual(LOGICAL_RUN ? ['B', 'A'] : ['A', 'B']);
      const after = await drainAll();
      expect(after.rows).toBe(1);
      expect(await lifecycleOf('A')).toMatch(/^a\|/);
    } finally {
      await t1.end();
      await t2.end();
    }
  });

  it('an open transaction that started first holds nothing back; its change comes when it commits', async () => {
    const t1 = await session();
    try {
      await t1.query('begin');
      await t1.query(`insert into shop.skus (sku_id, title, lifecycle) values ('A', 'a', 'active')`);
      await c.pool.query(`insert into shop.skus (sku_id, title, lifecycle) values ('B', 'b', 'active')`);
      const first = await drainAll();
      expect(first.rows).toBe(1); // B, although t1 (older) is still open
      expect(await lifecycleOf('B')).toMatch(/^a\|/);
      expect(await lifecycleOf('A')).toBeNull();
      await t1.query('commit');
      expect((await drainAll()).rows).toBe(1);
      expect(await lifecycleOf('A')).toMatch(/^a\|/);
    } finally {
      await t1.end();
    }
  });

  it('a rolled-back transaction is never applied, and reports open transactions as information only', async () => {
    const t1 = await session();
    try {
      await t1.query('begin');
      await t1.query(`insert into shop.skus (sku_id, title, lifecycle) values ('A', 'a', 'active')`);
      await c.pool.query(`insert into shop.skus (sku_id, title, lifecycle) values ('B', 'b', 'active')`);
      const r = await drainAll();
      expect(r.caughtUp).toBe(true);
      const open = await openTransactions(c.pool);
      const {
        rows: [me],
      } = await t1.query('select pg_backend_pid() as pid');
      expect(open.count).toBeGreaterThanOrEqual(1);
      expect(open.oldest?.pid).toBe(me.pid);
      expect(JSON.stringify(open)).not.toMatch(/insert into/i); // never another session's SQL
      await t1.query('rollback');
      expect((await drainAll()).rows).toBe(0);
      expect(await lifecycleOf('A')).toBeNull();
      expect(await backlog(c.pool)).toBe(0);
    } finally {
      await t1.end();
    }
  });

  it('re-applying after a crash between the Redis apply and the cursor commit changes nothing', async () => {
    await seedMinimal(c.pool);
    await c.pool.query(`insert into shop.orders (sku_id, fc_id, qty, status) values ('S1', 'F1', 3, 'placed')`);
    const start = await saveCursorRow(c.pool);
    // One batch (it holds every row): Redis gets it and the cursor commits ...
    expect((await acts.drainBatch({ owner })).caughtUp).toBe(true);
    const snapshot = async () =>
      Object.fromEntries(
        await Promise.all(
          (await c.redis.keys('fbt:*'))
            .filter((k) => /:(s|f|l|r):/.test(k))
            .sort()
            .map(async (k) => [k, await c.redis.hgetall(k)]),
        ),
      );
    const before = await snapshot();
    // ... or, had the worker died just before that commit, the cursor would still be here, with
    // Redis holding the batch and its claim: exactly this state.
    await restoreCursorRow(c.pool, start);
    const replayed = await drainAll();
    expect(replayed.rows).toBeGreaterThan(0);
    expect(await snapshot()).toEqual(before);
  });

  it('sends malformed rows to dead letters and keeps applying the rows after them', async () => {
    await c.pool.query(
      `insert into pipeline.outbox (tbl, op, key, image) values ('skus', 'I', 'S7', '{"sku_id": "S7", "lifecycle": "sideways"}')`,
    );
    await c.pool.query(`insert into pipeline.outbox (tbl, op, key, image) values ('warehouses', 'I', 'W', '{}')`);
    await c.pool.query(`insert into shop.skus (sku_id, title, lifecycle) values ('S8', 'ok', 'active')`);
    const r = await acts.drainBatch({ owner });
    // With several drain shards, every shard reads a row of no SKU (it may write every
    // partition's copies) and dead-letters it for its own partitions.
    const shards = c.config.DRAIN_SHARDS;
    expect(r).toMatchObject({ outcome: 'applied', rows: 2 + shards, deadLetters: 1 + shards });
    expect(await lifecycleOf('S8')).toMatch(/^a\|/);
    const dead = (await c.pool.query(`select distinct key, error from pipeline.dead_letters order by key`)).rows;
    expect(dead).toEqual([
      { key: 'S7', error: expect.stringMatching(/lifecycle/) },
      { key: 'W', error: expect.stringMatching(/unknown source table 'warehouses'/) },
    ]);
    // Re-processing the same rows (after a crash) does not duplicate dead letters.
    await rewindCursor(c.pool);
    await drainAll();
    expect((await c.pool.query(`select count(*)::int as n from pipeline.dead_letters`)).rows[0].n).toBe(1 + shards);
  });

  it('a malformed row whose image holds \\u0000 (json takes it, jsonb does not) is dead-lettered too, not retried for good', async () => {
    await c.pool.query(
      `insert into pipeline.outbox (tbl, op, key, image) values ('skus', 'U', 'N1', '{"sku_id": "N1", "lifecycle": "x\\u0000y"}')`,
    );
    await c.pool.query(`insert into shop.skus (sku_id, title, lifecycle) values ('N2', 'ok', 'active')`);
    expect(await acts.drainBatch({ owner })).toMatchObject({ outcome: 'applied', deadLetters: 1 });
    expect(await lifecycleOf('N2')).toMatch(/^a\|/);
    const dead = (await c.pool.query(`select image, error from pipeline.dead_letters where key = 'N1'`)).rows;
    expect(dead).toEqual([
      {
        image: { sku_id: 'N1', lifecycle: 'x\uFFFDy' },
        error: expect.stringMatching(/lifecycle.*NUL characters .* kept here as U\+FFFD/),
      },
    ]);
  });

  it('an activity that ends behind says by how many rows (the Web UI shows it); a caught-up one does not count', async () => {
    await insertSkuChanges('B', 50);
    // A budget spent after the first batch of 10: the activity ends behind.
    const r = await acts.drainBatch({ owner, maxRows: 10, maxBatchRows: 10, budgetMs: 1 });
    expect(r.caughtUp).toBe(false);
    expect(r.behindCapped).toBe(false);
    // counted as `ops status` counts: the rows of a snapshot delta in progress until it completes
    if (c.config.DRAIN_SHARDS === 1) {
      expect(r.rows).toBe(10);
      expect(r.behindRows).toBeGreaterThanOrEqual(40);
      expect(r.behindRows).toBeLessThanOrEqual(50);
    } else expect(r.behindRows).toBeGreaterThan(0);
    await drainAll();
    const done = await acts.drainBatch({ owner, budgetMs: 1 });
    expect(done.caughtUp).toBe(true);
    expect(done.behindRows).toBeUndefined();
  });

  it('a retry after that crash reads its chunk at the target the store claimed, not at a newer snapshot', async () => {
    await insertSkuChanges('R', 5);
    const start = await saveCursorRow(c.pool);
    expect(await acts.drainBatch({ owner })).toMatchObject({ rows: 5, caughtUp: true });
    await restoreCursorRow(c.pool, start); // the cursor commit lost; the store holds the batch's claim
    await insertSkuChanges('Q', 5); // committed after that claim's snapshot
    // The pass reads its chunk while the store's check runs, at the snapshot it would propose now;
    // the check answers with the earlier claim, and the chunk is read again there.
    expect(await acts.drainBatch({ owner })).toMatchObject({ rows: 5, caughtUp: true });
    expect(await acts.drainBatch({ owner })).toMatchObject({ rows: 5, caughtUp: true });
    expect(await lifecycleOf('Q5')).not.toBeNull();
  });

  it('says the store is incomplete when the last pass watermark found no epoch (that write is answered late)', async () => {
    await insertSkuChanges('E', 5);
    await drainAll();
    await c.redis.del(...c.keys.partitions.map((p) => p.epoch)); // the store lost data: a rebuild is due
    await insertSkuChanges('F', 5);
    // One applied pass and the budget is spent: its watermark write, sent after the commit and
    // answered while a next pass would run, is what tells.
    const r = await acts.drainBatch({ owner, budgetMs: 1 });
    expect(r).toMatchObject({ outcome: 'applied', rows: 5, storeIncomplete: true });
    expect(r.storeWasComplete).toBeUndefined(); // (the workflow would take the backfill for done)
  });

  it('a pass whose watermark found no epoch ends the activity after the next pass', async () => {
    await insertSkuChanges('H', 5);
    await drainAll();
    await c.redis.del(...c.keys.partitions.map((p) => p.epoch));
    await insertSkuChanges('J', 15);
    // chunks of 5: the first pass's watermark is answered during the second, which then ends it
    // (each drain shard's, of its own SKUs: with several, the rows of two passes of each)
    const r = await acts.drainBatch({ owner, maxRows: 5, maxBatchRows: 5, budgetMs: 10_000 });
    expect(r).toMatchObject({ outcome: 'applied', storeIncomplete: true });
    if (c.config.DRAIN_SHARDS === 1) expect(r.rows).toBe(10);
    else expect(r.rows).toBeLessThanOrEqual(10 * c.config.DRAIN_SHARDS);
    expect(r.storeWasComplete).toBeUndefined();
  });

  // The watermark's caught-up time is also written on Redis's clock, as Redis's TIME minus the
  // time's age measured by the drain (store/watermark.ts); reads measure their lag against it. It
  // must never be later than the time it stands for by more than the write waited between being
  // sent and running (here every server shares one clock), or a read would take a stale store for
  // fresher than it is. That wait is the read's host-clock term's to cover (docs/correctness.md,
  // "One clock for the lag"); here it is bounded by the duration of the call that wrote it.
  it("writes the caught-up time on Redis's clock no later than the time it stands for", async () => {
    await insertSkuChanges('K', 20);
    await drainAll();
    const sent = performance.now();
    await acts.drainBatch({ owner, budgetMs: 1 }); // an idle pass too
    const waitedAtMost = performance.now() - sent;
    for (const p of c.keys.partitions) {
      const [at, onRedisClock] = (await c.redis.hmget(p.meta, FIELD.caughtUpAt, FIELD.caughtUpClock)).map(Number);
      const [s, us] = await c.redis.time();
      const redisNow = Number(s) * 1000 + Math.floor(Number(us) / 1000);
      expect(onRedisClock).toBeLessThanOrEqual(at! + 1 + waitedAtMost); // ms rounding, and the write's wait
      expect(redisNow - onRedisClock!).toBeLessThan(10_000);
    }
  });

  // Under CAPTURE_MODE=logical the sources are recorded by the first capture that connects
  // (outbox/capture-layout.ts). Before that (the reader role cannot log in yet, the capture
  // schedules are not running) nothing of theirs is in the outbox: an empty record is not "no
  // source captures from the WAL", and the drain must not confirm the store as caught up now.
  it.skipIf(LOGICAL_RUN)(
    'under CAPTURE_MODE=logical, a pipeline database that records no source yet confirms nothing',
    async () => {
      await c.pool.query(`delete from pipeline.capture_progress`); // none in this run: made sure
      await insertSkuChanges('L', 3);
      const logical = activitiesFor({ ...pipelineClients(c), config: { ...c.config, CAPTURE_MODE: 'logical' } });
      const caughtUpAt = async () =>
        Math.max(
          ...(await Promise.all(c.keys.partitions.map((p) => c.redis.hget(p.meta, FIELD.caughtUpAt)))).map(Number),
        );
      expect((await logical.drainBatch({ owner, budgetMs: 1 })).rows).toBe(3); // applied as usual
      await logical.drainBatch({ owner, budgetMs: 1 }); // an idle pass too
      expect(await caughtUpAt()).toBe(0); // the epoch: reads stale
      const before = Date.now();
      await acts.drainBatch({ owner, budgetMs: 1 }); // the trigger capture's drain: caught up now
      expect(await caughtUpAt()).toBeGreaterThan(before - 10_000);
    },
  );

  it('a backlog is drained in chunks that double up to maxBatchRows, read ahead at the doubled size', async () => {
    await insertSkuChanges('G', 100);
    // a budget the four passes fit in on a loaded machine (the call then idles to its end)
    const r = await acts.drainBatch({ owner, maxRows: 10, maxBatchRows: 40, budgetMs: 3_000 });
    expect(r.rows).toBe(100);
    // chunks of 10, 20, 40 and 30 (a prefetch read at the old size once held every chunk at 10)
    if (c.config.DRAIN_SHARDS === 1) expect(r.batches).toBe(4);
    expect(await c.redis.hget(c.keys.sku('G100'), LIFECYCLE_FIELD)).not.toBeNull();
  });

  // Capture from the WAL runs in this process in the logical run (test/support/logical-run.ts), as
  // it does beside the drain in the worker; the trigger capture writes inside source transactions
  // and has nobody to tell.
  it.runIf(LOGICAL_RUN)('an idle drain wakes on a capture write in its process, not at its next poll', async () => {
    const slowPoll = activitiesFor({ ...pipelineClients(c), config: { ...c.config, DRAIN_POLL_MS: 5_000 } });
    const started = Date.now();
    // the drain of W's shard (with several, the others have nothing to wake for)
    const shards = c.config.DRAIN_SHARDS;
    const shard = shards > 1 ? { index: shardOfPartition(c.keys.ofSku('W').index, shards), count: shards } : undefined;
    const draining = slowPoll.drainBatch({ owner, waitMs: 8_000, shard });
    await sleep(500); // its first pass found nothing: it waits
    await c.pool.query(`insert into shop.skus (sku_id, title, lifecycle) values ('W', 'w', 'active')`);
    const r = await draining;
    expect(r.outcome).toBe('applied');
    expect(await lifecycleOf('W')).not.toBeNull();
    // the poll would have come 5 s after the first pass; the write brought it far sooner
    expect(Date.now() - started).toBeLessThan(4_000);
  });

  it('never applies concurrently: a batch finds the advisory lock held and steps back', async () => {
    await seedMinimal(c.pool);
    const holder = new pg.Client({ connectionString: TEST_DATABASE_URL }); // the pipeline's database
    await holder.connect();
    try {
      await holder.query('begin');
      for (const shard of drainShards(c.config.DRAIN_SHARDS))
        await holder.query(`select pg_advisory_xact_lock(hashtext($1))`, [drainLockName(shard.consumer)]);
      const r = await acts.drainBatch({ owner });
      expect(r.outcome).toBe('busy');
      expect(r.rows).toBe(0);
      await holder.query('commit');
      expect((await acts.drainBatch({ owner })).outcome).toBe('applied');
    } finally {
      await holder.end();
    }
  });

  it('a second owner cannot take a live lease and is told who holds it', async () => {
    const other = await acts.acquireDrainLease({ owner: 'someone-else' });
    expect(other).toMatchObject({ acquired: false, holder: owner });
    await seedMinimal(c.pool);
    const r = await acts.drainBatch({ owner: 'someone-else' });
    expect(r).toMatchObject({ outcome: 'lease-lost', holder: owner, rows: 0 });
    expect(await acts.releaseDrainLease({ owner })).toBe(true);
    expect((await acts.acquireDrainLease({ owner: 'someone-else' })).acquired).toBe(true);
  });

  it('every applied pass extends the lease, so an activity that drains longer than its TTL keeps it', async () => {
    await seedMinimal(c.pool);
    // The lease about to run out, as in an activity that has drained for almost the whole TTL.
    await c.pool.query(
      `update pipeline.leases set expires_at = clock_timestamp() + interval '2 seconds' where owner = $1`,
      [owner],
    );
    expect((await acts.drainBatch({ owner })).outcome).toBe('applied');
    const left = await c.pool.query(
      `select extract(epoch from max(expires_at) - clock_timestamp()) * 1000 as ms from pipeline.leases where owner = $1`,
      [owner],
    );
    expect(Number(left.rows[0].ms)).toBeGreaterThan(c.config.DRAIN_LEASE_TTL_MS - 5_000);
  });

  it('an idle pass renews the lease once half its TTL is gone, so an idle drain keeps it; not every poll', async () => {
    // drained: nothing new, every pass of the call below is idle
    for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') break;
    const leftMs = async () =>
      Number(
        (
          await c.pool.query(
            `select extract(epoch from max(expires_at) - clock_timestamp()) * 1000 as ms from pipeline.leases where owner = $1`,
            [owner],
          )
        ).rows[0].ms,
      );
    const ttl = c.config.DRAIN_LEASE_TTL_MS;
    // with more than half its TTL left: an idle pass leaves the row alone
    await c.pool.query(
      `update pipeline.leases set expires_at = clock_timestamp() + $2 * interval '1 millisecond' where owner = $1`,
      [owner, ttl * 0.75],
    );
    expect((await acts.drainBatch({ owner })).outcome).toBe('idle');
    expect(await leftMs()).toBeLessThan(ttl * 0.75);
    // lapsed (an idle drain longer than the TTL): the next idle pass takes it again
    await c.pool.query(
      `update pipeline.leases set expires_at = clock_timestamp() - interval '1 second' where owner = $1`,
      [owner],
    );
    expect((await acts.drainBatch({ owner })).outcome).toBe('idle');
    expect(await leftMs()).toBeGreaterThan(ttl - 5_000);
    expect((await acts.acquireDrainLease({ owner: 'someone-else' })).acquired).toBe(false);
  });

  it('fails fast, not retryably, when the schema is missing', async () => {
    const wrongDb = testClients({ DATABASE_URL: TEST_DATABASE_URL.replace(/\/[^/]+$/, '/postgres') });
    try {
      await expect(activitiesFor(wrongDb).drainBatch({ owner })).rejects.toMatchObject({
        type: 'ConfigurationError',
        nonRetryable: true,
      });
    } finally {
      await wrongDb.close();
    }
  });
});
