/**
 * Operating the pipeline without reading its code (issue 24), through the operator CLI (a real
 * child process) against the real services: a backfill's progress knows its total on a fresh
 * install, `ops replay` takes what `ops status` prints (and a time), a dead letter that will
 * never apply can be discarded (and the waiting gauge drops), and `ops explain` says which rule
 * decided a badge, FC by FC, store beside source.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIFECYCLE_FIELD } from '../../store/keys';
import { createWorkerMetrics } from '../../worker/metrics';
import { backfillWorkflow, type BackfillProgress } from '../../workflows';
import { ALL_SCHEDULE_IDS, drainScheduleIds, ensureSchedules } from '../../scripts/lib/schedules';
import { CatalogueSize, seedCatalogue } from '../../simulator/catalogue';
import { activitiesFor } from '../support/activities';
import { backlog as drainBacklog } from '../support/cursor';
import {
  deleteSchedules,
  eventually,
  pipelineClients,
  resetState,
  sharedTestServer,
  startWorker,
  temporalClient,
  testClients,
} from '../support/env';
import { runOps } from '../support/ops-cli';
import { beginHold, releaseHold } from '../../outbox';

const taskQueue = `ops-usability-${process.pid}`;
const c = testClients({
  TEMPORAL_TASK_QUEUE: taskQueue,
  STALE_AFTER_MS: '2000',
  DRAIN_LEASE_TTL_MS: '2000',
  DRAIN_INTERVAL_MS: '60000',
  VERIFY_INTERVAL_MS: '86400000',
});
const { address, bundlePath } = sharedTestServer();
const size: CatalogueSize = { skus: 200, fcs: 4, regions: 2, fcsPerRegion: 2, fcsPerSku: 2 };
let worker: Awaited<ReturnType<typeof startWorker>>;
let temporal: Awaited<ReturnType<typeof temporalClient>>;
const ops = (...args: string[]) => runOps(c.config, address, args);
const backlog = () => drainBacklog(c.pool);
const applied = () => eventually(async () => (await backlog()) === 0, 20_000, 'the drain to apply every change');

beforeAll(async () => {
  await resetState(c); // TRUNCATE: every shop table's statistics are gone (reltuples -1)
  worker = await startWorker(c, address, bundlePath, taskQueue);
  temporal = await temporalClient(address);
  await ensureSchedules(temporal.client, c.config, c.config.DRAIN_SHARDS);
  await seedCatalogue(c.pool, size);
  expect((await ops('resume')).code).toBe(0);
  await applied();
});
afterAll(async () => {
  await ops('pause');
  await deleteSchedules(temporal?.client, [...ALL_SCHEDULE_IDS, ...drainScheduleIds(c.config.DRAIN_SHARDS)]);
  await worker?.stop();
  await temporal?.close();
  await c.close();
});

describe('backfill progress on a fresh install', () => {
  it('tables never analysed are counted: the estimate is the real row count, never 0', async () => {
    const stats = await c.pool.query(
      `select relname, reltuples from pg_class where relnamespace = 'shop'::regnamespace and relname = 'inventory'`,
    );
    expect(stats.rows[0].reltuples).toBeLessThan(0); // the case of the issue: no statistics at all
    const counts = (
      await c.pool.query(`select (select count(*) from shop.fulfillment_centers)::int as fulfillment_centers,
        (select count(*) from shop.region_fc)::int as region_fc, (select count(*) from shop.skus)::int as skus,
        (select count(*) from shop.inventory)::int as inventory`)
    ).rows[0];
    expect(await activitiesFor(pipelineClients(c)).backfillPlan({})).toEqual(counts);

    const run = await temporal.client.workflow.start(backfillWorkflow, {
      taskQueue,
      workflowId: `usability-backfill-${Date.now()}`,
      args: [{ chunkRows: 100, rowsPerSecond: 0 }],
    });
    const result = await run.result();
    const progress = (await run.query('progress')) as BackfillProgress;
    const total = Object.values(counts as Record<string, number>).reduce((a, b) => a + b, 0);
    expect(progress.estimatedRows).toBe(total);
    expect(result.rows).toBe(total);
    expect(progress.rows).toBeLessThanOrEqual(progress.estimatedRows);
    // and the pipeline wrote nothing into the source: statistics still absent
    const after = await c.pool.query(`select reltuples from pg_class where oid = 'shop.inventory'::regclass`);
    expect(after.rows[0].reltuples).toBeLessThan(0);
  });
});

describe('ops replay from what ops status prints', () => {
  it('--from the replay point of `ops status` re-applies the changes after it; --since a duration too', async () => {
    const human = await ops('status');
    const point = /replay point\s+(\d+:\d+:[\d,]*) \(npm run ops -- replay --from \1 /.exec(human.stdout)?.[1];
    expect(point, human.stdout).toBeDefined();
    expect(JSON.parse((await ops('status', '--json')).stdout).replayFrom).toMatch(/^\d+:\d+:[\d,]*$/);
    expect(human.stdout).toMatch(new RegExp(`applied through snapshot ${point}`));

    // a change after that point, applied; then a value faulty logic got wrong (same version)
    await c.pool.query(`update shop.inventory set on_hand = on_hand + 7 where sku_id = 'SKU-0000004'`);
    await applied();
    const key = c.keys.sku('SKU-0000004');
    const [fc, raw] = Object.entries(await c.redis.hgetall(key)).find(([f]) => f !== LIFECYCLE_FIELD)!;
    await c.redis.hset(key, fc, `12345|${raw.split('|')[1]}`);

    const r = await ops('replay', '--from', point!);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const replayed = Number(/replayed (\d+) changes/.exec(r.stdout)![1]);
    expect(replayed).toBeGreaterThanOrEqual(size.fcsPerSku); // the update's rows ...
    const all = (await c.pool.query(`select count(*)::int as n from pipeline.outbox`)).rows[0].n;
    expect(replayed).toBeLessThan(all); // ... not everything since the start
    expect(await c.redis.hget(key, fc)).toBe(raw);

    await c.redis.hset(key, fc, `12345|${raw.split('|')[1]}`);
    const since = await ops('replay', '--since', '1h');
    expect(since.code).toBe(0);
    expect(Number(/replayed (\d+) changes/.exec(since.stdout)![1])).toBe(all);
    expect(await c.redis.hget(key, fc)).toBe(raw);
    // a finished replay holds nothing back; one under way is named with what it keeps
    expect((await ops('status')).stdout).toMatch(/outbox holds\s+none/);
    await beginHold(c.pool, 'replay-under-way', '1');
    try {
      expect((await ops('status')).stdout).toMatch(
        /outbox holds\s+replay-under-way keeps rows from txid \d+ \(lapses at /,
      );
      expect(JSON.parse((await ops('status', '--json')).stdout).outboxHolds).toEqual([
        expect.objectContaining({ holder: 'replay-under-way' }),
      ]);
    } finally {
      await releaseHold(c.pool, 'replay-under-way');
    }
  });

  it('bad input: a usage error (exit 2) that says what is accepted', async () => {
    // (independent runs refused before any work: run together, as each costs a process start)
    const [bad, inverted, future, words, none, both] = await Promise.all([
      ops('replay', '--from', '3531875-3531875'),
      ops('replay', '--from', '9:5:'), // xmin > xmax
      ops('replay', '--since', '2999-01-01T00:00:00Z'),
      ops('replay', '--since', 'yesterday'),
      ops('replay'),
      ops('replay', '--from', 'start', '--since', '1h'),
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/snapshot XMIN:XMAX:XIP as `ops status` prints it, TXID:ID, or "start"/);
    expect(inverted.code).toBe(2);
    expect(future.code).toBe(2);
    expect(future.stderr).toMatch(/in the future/);
    expect(words.stderr).toMatch(/duration back from now like 30m/);
    expect(none.code).toBe(2);
    expect(both.code).toBe(2);
  });
});

describe('dead letters that will never apply', () => {
  it('discard: kept for audit, no longer waiting (list, status, gauge), never retried', async () => {
    const metrics = createWorkerMetrics();
    const stop = metrics.watchLag(c.workerPool, c.redis, c.keys, { everyMs: 100 });
    const waiting = async () =>
      Number(/^fresh_badges_dead_letters_waiting (\d+)$/m.exec(await metrics.registry.metrics())?.[1]);
    try {
      await c.pool.query(
        `insert into pipeline.outbox (tbl, op, key, image) values ('skus', 'U', 'SKU-0000009', '{"sku_id": "SKU-0000009", "lifecycle": "on-holiday"}')`,
      );
      await applied();
      const [dl] = JSON.parse((await ops('dead-letters', 'list', '--json')).stdout).rows;
      await eventually(async () => (await waiting()) === 1, 5_000, 'the gauge to count it');
      const retry = await ops('dead-letters', 'retry');
      expect(retry.code).toBe(1);
      expect(retry.stdout).toMatch(/0 applied, 1 still failing[\s\S]*dead-letters discard --id/);

      const discard = await ops('dead-letters', 'discard', '--id', dl.id, '--reason', 'upstream sent a bad lifecycle');
      expect(discard.stderr).toBe('');
      expect(discard.stdout).toMatch(new RegExp(`1 discarded \\(#${dl.id}\\)`));
      expect(discard.code).toBe(0);
      expect(JSON.parse((await ops('dead-letters', 'list', '--json')).stdout).total).toBe(0);
      expect(JSON.parse((await ops('status', '--json')).stdout).deadLetters).toBe(0);
      await eventually(async () => (await waiting()) === 0, 5_000, 'the gauge to drop to 0');
      const [listed, listedText] = await Promise.all([
        ops('dead-letters', 'list', '--all', '--json'),
        ops('dead-letters', 'list', '--all'),
      ]);
      const all = JSON.parse(listed.stdout);
      expect(all.rows[0]).toMatchObject({
        id: dl.id,
        retried_at: null,
        discarded_by: expect.stringMatching(/.+@.+/),
        discard_reason: 'upstream sent a bad lifecycle',
      });
      expect(listedText.stdout).toMatch(/\(discarded by .+@.+ at \d{4}-.+: upstream sent a bad lifecycle\)/);

      // never retried: a retry of everything finds nothing, and one by id neither; a second discard
      // is refused, and so is bad usage (each run changes nothing: run together)
      const [retryAll, retryOne, again, noTarget, allAndId, badId] = await Promise.all([
        ops('dead-letters', 'retry'),
        ops('dead-letters', 'retry', '--id', dl.id),
        ops('dead-letters', 'discard', '--id', dl.id),
        ops('dead-letters', 'discard'),
        ops('dead-letters', 'discard', '--all', '--id', dl.id),
        ops('dead-letters', 'discard', '--id', 'x1'),
      ]);
      expect(retryAll.stdout, retryAll.stderr).toMatch(/0 applied, 0 still failing/);
      expect(retryOne.stdout, retryOne.stderr).toMatch(/0 applied, 0 still failing/);
      const row = (await c.pool.query(`select retried_at, error from pipeline.dead_letters where id = $1`, [dl.id]))
        .rows[0];
      expect(row.retried_at).toBeNull();
      expect(again.code).toBe(1);
      expect(again.stdout).toMatch(new RegExp(`not waiting .*: ${dl.id}`));
      expect(noTarget.code).toBe(2);
      expect(allAndId.code).toBe(2);
      expect(badId.code).toBe(2);
    } finally {
      stop();
    }
  });
});

describe('ops explain', () => {
  const sku = 'SKU-EXPLAIN';
  /** FC-X2 rank 1 (full today), FC-X1 rank 2 (no stock), FC-X3 rank 3: the rule's order is not the ids'. */
  beforeAll(async () => {
    await c.pool.query(`insert into shop.fulfillment_centers (fc_id, region, daily_capacity) values
      ('FC-X1', 'R-X', 100), ('FC-X2', 'R-X', 2), ('FC-X3', 'R-X', 50)`);
    await c.pool.query(
      `insert into shop.region_fc (region, fc_id, rank) values ('R-X', 'FC-X2', 1), ('R-X', 'FC-X1', 2), ('R-X', 'FC-X3', 3)`,
    );
    await c.pool.query(`insert into shop.skus (sku_id, title, lifecycle) values ($1, 'explained', 'active')`, [sku]);
    await c.pool.query(
      `insert into shop.inventory (sku_id, fc_id, on_hand, reserved) values
      ($1, 'FC-X2', 5, 0), ($1, 'FC-X1', 3, 3), ($1, 'FC-X3', 0, 0)`,
      [sku],
    );
    await c.pool.query(`insert into shop.orders (sku_id, fc_id, qty, status) values ($1, 'FC-X2', 2, 'placed')`, [sku]);
    await applied();
  });

  it('names the deciding rule and every FC in rank order, store beside source, decoded, with freshness', async () => {
    const r = await ops('explain', sku, '--region', 'R-X', '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const e = JSON.parse(r.stdout);
    expect(e.answer).toMatchObject({ reason: 'fc_at_capacity', eligible: false, stale: false });
    expect(e.answer.asOf).toMatch(/^\d{4}-\d{2}-\d{2}T/);
    expect(e.online.rule).toMatch(/^fc_at_capacity: .*FC-X2 load 2 of 2/);
    expect(e.online.fcs.map((f: { fc: string; verdict: string }) => [f.fc, f.verdict])).toEqual([
      ['FC-X2', 'at capacity'],
      ['FC-X1', 'no stock'],
      ['FC-X3', 'no stock'],
    ]);
    expect(e.online.fcs[0]).toMatchObject({ rank: 1, available: 5, capacity: 2, load: 2 });
    expect(e.source.fcs).toEqual(e.online.fcs);
    expect(e.agree).toBe(true);
    expect(e.differences).toEqual([]);
    expect(e.online.ttl).toMatchObject({ state: 'no TTL' });

    const human = await ops('explain', sku, '--region', 'R-X');
    expect(human.code).toBe(0);
    const out = human.stdout;
    expect(out).toMatch(/SKU-EXPLAIN in R-X: NOT ELIGIBLE: fc_at_capacity \(the online answer\)/);
    expect(out).toMatch(/why \(store\): fc_at_capacity/);
    expect(out).toMatch(/source \(SQL\): the same badge/);
    expect(out).toMatch(/freshness: fresh, as of \d{4}-/);
    expect(out.indexOf('FC-X2')).toBeLessThan(out.indexOf('FC-X1'));
    expect(out.indexOf('FC-X1')).toBeLessThan(out.indexOf('FC-X3'));
    expect(out).not.toMatch(/"#"|\d\|\d|-2\b/); // no stored encodings, no TTL codes
  });

  it('stock at the next FC in rank order: eligible from it; a store that differs from the source is shown', async () => {
    await c.pool.query(`update shop.inventory set on_hand = 4 where sku_id = $1 and fc_id = 'FC-X3'`, [sku]);
    await applied();
    const e = JSON.parse((await ops('explain', sku, '--region', 'R-X', '--json')).stdout);
    expect(e.answer).toMatchObject({ eligible: true, fc: 'FC-X3', reason: 'eligible' });
    expect(e.online.rule).toMatch(
      /^eligible: .*FC-X3 \(rank 3\) is the first FC in rank order with stock \(4 available\)/,
    );
    expect(e.online.fcs.map((f: { verdict: string }) => f.verdict)).toEqual(['at capacity', 'no stock', 'chosen']);

    // the store loses FC-X3's stock (as after a bug): the explanation shows both sides
    await c.redis.hdel(c.keys.sku(sku), 'FC-X3');
    const d = JSON.parse((await ops('explain', sku, '--region', 'R-X', '--json')).stdout);
    expect(d.agree).toBe(false);
    expect(d.answer.reason).toBe('fc_at_capacity');
    expect(d.source.badge).toMatchObject({ reason: 'eligible', fc: 'FC-X3' });
    expect(d.differences).toEqual(['FC-X3 available: store 0, source 4']);
    const human = (await ops('explain', sku, '--region', 'R-X')).stdout;
    expect(human).toMatch(/FC-X3\s+0 \/ 4 .*no stock \/ chosen/);
    expect(human).toMatch(/source \(SQL\) DIFFERS: eligible: .*FC-X3/);
    expect(human).toMatch(/store and source differ:\n\s+FC-X3 available: store 0, source 4/);
  });

  it('inspect prints decoded values and TTLs in words', async () => {
    const r = await ops('inspect', sku, '--region', 'R-X');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/store \(SKU key: no TTL \(kept until deleted\)\)/);
    expect(r.stdout).toMatch(/lifecycle\s+active \(version \d+\)/);
    expect(r.stdout).toMatch(/FC-X2\s+5 available \(version \d+\)/);
    expect(r.stdout).not.toMatch(/"#"|\d\|\d|-2\b/);
    const j = JSON.parse((await ops('inspect', sku, '--json')).stdout);
    expect(j.store.lifecycle).toMatchObject({ value: 'active', tombstone: false });
    expect((await ops('inspect', 'SKU-NOWHERE')).stdout).toMatch(/SKU key: key absent/);
    // a value a backfill filled carries its snapshot's tag, not a number
    const stockField = c.keys.sku(sku);
    const before = await c.redis.hget(stockField, 'FC-X2');
    await c.redis.hset(stockField, 'FC-X2', '5|s7');
    const filled = await ops('inspect', sku);
    await c.redis.hset(stockField, 'FC-X2', before!);
    expect(filled.stdout).toMatch(/FC-X2\s+5 available \(filled by backfill snapshot s7\)/);
    expect(filled.stdout).not.toMatch(/NaN/);
    expect((await ops('explain', sku)).code).toBe(2); // --region is required
  });
});
