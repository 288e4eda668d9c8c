/**
 * The read path end to end: a change committed in shop flips the HTTP answer within seconds;
 * a paused drain makes answers stale (still answering); after a simulator run the API agrees
 * with the rule computed by SQL; Redis down -> 503, back -> 200.
 */
import { backlog } from '../support/cursor';
import { beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { READ_COMMAND_TIMEOUT_MS, readPathRedis } from '../../serving/main';
import { sourceBadges } from '../../reconcile/source-badges';
import { CatalogueSize, regionId, seedCatalogue, skuId } from '../../simulator/catalogue';
import { rng, runTraffic } from '../../simulator/traffic';
import { stopDrainSignal } from '../../workflows';
import { drainSettled, eventually, resetState, startDrain } from '../support/env';
import { get, startTestApi } from '../support/http';
import { usePipeline } from '../support/pipeline-fixture';
import { freePort, startRedisServer, stopProcess } from '../support/redis-process';

describe('through the drain', () => {
  // A short lease so a new run can take over quickly from a terminated one.
  const pipeline = usePipeline('read-e2e', {
    config: { DRAIN_LEASE_TTL_MS: '1000' },
    worker: true,
    api: { staleAfterMs: 1_000 },
  });
  const { c, taskQueue } = pipeline;
  let runId = 0;
  const startTheDrain = () =>
    startDrain(pipeline.temporal.client, c.config, {
      taskQueue,
      workflowId: `drain-read-${Date.now()}-${runId++}`,
      args: [{ intervalMs: 600_000, idleWaitMs: 200 }],
    });

  beforeAll(() => resetState(c));

  const badge = async (sku: string, region = 'R1') =>
    (await get(`${pipeline.api.base}/v1/badges/${sku}?region=${region}`)).body;
  const until = (sku: string, want: Record<string, unknown>, what: string) =>
    eventually(
      async () => {
        const b = await badge(sku);
        return Object.entries(want).every(([k, v]) => b[k] === v) ? b : null;
      },
      10_000,
      what,
    );

  it('a committed change flips the answer within seconds, for each reason; pause -> stale, resume -> fresh', async () => {
    let drain = await startTheDrain();
    const q = (sql: string, params: unknown[] = []) => c.pool.query(sql, params);
    await q(`insert into shop.fulfillment_centers values ('F1', 'R1', 5, now()), ('F2', 'R1', 100, now())`);
    await q(`insert into shop.region_fc values ('R1', 'F1', 1), ('R1', 'F2', 2)`);
    expect((await badge('S1')).reason).toBe('unknown');
    await q(`insert into shop.skus (sku_id, title, lifecycle) values ('S1', 's', 'active')`);
    await until('S1', { reason: 'out_of_stock' }, 'out_of_stock');
    await q(`insert into shop.inventory values ('S1', 'F1', 3, 0, now())`);
    await until('S1', { reason: 'eligible', fc: 'F1' }, 'eligible at F1');
    await q(`insert into shop.orders (sku_id, fc_id, qty, status) values ('S1', 'F1', 5, 'placed')`);
    await until('S1', { reason: 'fc_at_capacity' }, 'F1 at capacity');
    await q(`insert into shop.inventory values ('S1', 'F2', 1, 0, now())`);
    await until('S1', { reason: 'eligible', fc: 'F2' }, 'eligible at F2');
    await q(`update shop.inventory set reserved = 1 where sku_id = 'S1' and fc_id = 'F2'`);
    await until('S1', { reason: 'fc_at_capacity' }, 'stock only at the full FC');
    await q(`update shop.orders set status = 'cancelled'`);
    await until('S1', { reason: 'eligible', fc: 'F1' }, 'capacity released');
    await q(`update shop.skus set lifecycle = 'paused' where sku_id = 'S1'`);
    await until('S1', { reason: 'paused' }, 'paused');
    await q(`update shop.skus set lifecycle = 'discontinued' where sku_id = 'S1'`);
    await until('S1', { reason: 'discontinued' }, 'discontinued');
    await q(`update shop.skus set lifecycle = 'active' where sku_id = 'S1'`);
    await until('S1', { reason: 'eligible', stale: false }, 'active again, fresh');

    // Pause: the drain stops; reads keep answering last-known features, flagged stale.
    // The stop signal (ops pause): the run cancels its activity, which drains for seconds at a
    // time, and ends only once that has returned; then no drain can see the next change.
    await drain.signal(stopDrainSignal);
    await drain.result();
    await drainSettled(c);
    await q(`update shop.inventory set on_hand = 0 where sku_id = 'S1'`);
    const paused = await eventually(
      async () => {
        const b = await badge('S1');
        return b.stale ? b : null;
      },
      10_000,
      'stale while paused',
    );
    expect(paused).toMatchObject({ reason: 'eligible', stale: true });
    expect(paused.lagMs).toBeGreaterThan(1000);

    // Resume: caught up, the change shows and stale clears by itself.
    drain = await startTheDrain();
    await until('S1', { reason: 'out_of_stock', stale: false }, 'caught up after resume');
    // stopped, not terminated: a terminated run's activity drains on for seconds, past the next reset
    await drain.signal(stopDrainSignal);
    await drain.result();
  });

  it('after a simulator run the API equals the rule computed by SQL for sampled (SKU, region) pairs', async () => {
    await resetState(c);
    const drain = await startTheDrain();
    const size: CatalogueSize = { skus: 500, fcs: 6, regions: 3, fcsPerRegion: 3, fcsPerSku: 2 };
    await seedCatalogue(c.pool, size);
    await runTraffic(c.pool, { rate: 0, changes: 4000, connections: 6, seed: 3, size });
    // Tight capacities (after the traffic, which changes them too) so that every reason shows up.
    await c.pool.query(
      `update shop.fulfillment_centers set daily_capacity = case when substr(fc_id, 4)::int % 3 = 0 then 0 else 1000000 end`,
    );
    await eventually(async () => (await backlog(c.pool)) === 0, 20_000, 'the drain to apply every change');

    const random = rng(99);
    const seen = new Set<string>();
    for (let region = 0; region < size.regions; region++) {
      const skus = Array.from(
        new Set(Array.from({ length: 60 }, () => skuId(Math.floor(random() * (size.skus + 20))))),
      ); // some unknown
      const answer = (await get(`${pipeline.api.base}/v1/badges?region=${regionId(region)}&skus=${skus.join(',')}`))
        .body;
      const sql = await sourceBadges(c.pool, regionId(region), skus);
      expect(answer.badges).toEqual(sql);
      for (const b of sql) seen.add(b.reason);
    }
    expect([...seen].sort()).toEqual([
      'discontinued',
      'eligible',
      'fc_at_capacity',
      'out_of_stock',
      'paused',
      'unknown',
    ]);
    await drain.signal(stopDrainSignal);
    await drain.result();
  });
});

describe('Redis outage', () => {
  it('answers 503 while Redis holds its commands (paused, stalled) instead of waiting for it', async () => {
    const port = await freePort();
    const server = await startRedisServer(port);
    const url = `redis://127.0.0.1:${port}/0`;
    const redis = readPathRedis({ REDIS_URL: url, REDIS_CLUSTER_NODES: '' });
    const admin = new Redis(url);
    const api = await startTestApi(redis, 'fbt:');
    try {
      await eventually(async () => (await get(`${api.base}/healthz`)).status === 200, 5_000, 'redis up');
      // every client's commands held for 4 s, the read API's included (the connection stays up)
      await admin.call('CLIENT', 'PAUSE', String(READ_COMMAND_TIMEOUT_MS + 3_000), 'ALL');
      const r = await get(`${api.base}/v1/badges?region=R1&skus=A`);
      expect(r.status).toBe(503);
      expect(r.body.error).toMatch(/online store unavailable: Command timed out/);
      await eventually(
        async () => (await get(`${api.base}/v1/badges?region=R1&skus=A`)).status === 200,
        10_000,
        'answers again once Redis does',
      );
    } finally {
      await api.close();
      redis.disconnect();
      admin.disconnect();
      await stopProcess(server);
    }
  });

  it('answers 503 with a JSON error while Redis is down and recovers by itself', async () => {
    const port = await freePort();
    let server = await startRedisServer(port);
    const redis = readPathRedis({ REDIS_URL: `redis://127.0.0.1:${port}/0`, REDIS_CLUSTER_NODES: '' });
    const api = await startTestApi(redis, 'fbt:');
    try {
      await eventually(async () => (await get(`${api.base}/healthz`)).status === 200, 5_000, 'redis up');
      expect((await get(`${api.base}/v1/badges?region=R1&skus=A`)).status).toBe(200);
      await stopProcess(server);
      for (const path of ['/v1/badges?region=R1&skus=A', '/v1/badges/A?region=R1', '/healthz']) {
        const r = await eventually(
          async () => {
            const x = await get(`${api.base}${path}`);
            return x.status === 503 ? x : null;
          },
          5_000,
          `503 on ${path}`,
        );
        expect(r.body.error).toMatch(/online store unavailable/);
      }
      server = await startRedisServer(port);
      const back = await eventually(
        async () => {
          const x = await get(`${api.base}/v1/badges?region=R1&skus=A`);
          return x.status === 200 ? x : null;
        },
        10_000,
        'recovery after Redis is back',
      );
      expect(back.body.badges).toEqual([{ sku: 'A', eligible: false, fc: null, reason: 'unknown' }]);
    } finally {
      await api.close();
      redis.disconnect();
      await stopProcess(server);
    }
  });
});
