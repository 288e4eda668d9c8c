/**
 * The read library and the HTTP API against real Redis, with features written by the same apply
 * the drain uses.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { utcDay, type FeatureUpdate } from '../../features/definitions';
import { createBadgeReader } from '../../serving/badge-reader';
import { applyUpdates } from '../../store/apply';
import { markCaughtUp } from '../../store/watermark';
import { FIELD } from '../../store/names';
import { eventually, resetState, testClients } from '../support/env';
import net from 'node:net';
import { get, rawRequest, startTestApi } from '../support/http';

const c = testClients();
afterAll(() => c.close());

// 23:59:30 UTC of today (the store keeps a load counter until its day's end plus LOAD_TTL_S: a day long past would not be kept)
const NOW = Date.parse(`${new Date().toISOString().slice(0, 10)}T23:59:30Z`);
const DAY_MS = 86_400_000;
/** When the last confirmation was sent (this process's monotonic clock): see lagOf. */
let confirmedAt = 0;
/** markCaughtUp, remembering when it was sent. */
async function confirm(at: number, ageMs: number) {
  confirmedAt = performance.now();
  await markCaughtUp(c.redis, c.keys, at, ageMs, null);
}
/**
 * A lag written as `ms` old, read a moment later: the reader measures it on Redis's clock from the
 * write (store/watermark.ts), so it has grown by the time between the two, which is at most the
 * time since the confirmation was sent (a loaded machine can stretch that past a second).
 */
const lagOf = (ms: number) =>
  expect.toSatisfy(
    (lag: number) => lag >= ms && lag <= ms + (performance.now() - confirmedAt) + 1,
    `a lag of ${ms} ms, grown by no more than the time since it was confirmed`,
  );
/** asOf with that lag: the reader's now less the lag it measured, so within lagOf's bounds below `at`. */
const asOfLagging = (at: number, ms: number) =>
  expect.toSatisfy(
    (asOf: string) => {
      const lag = at - Date.parse(asOf);
      return lag >= ms && lag <= ms + (performance.now() - confirmedAt) + 1;
    },
    `an asOf ${ms} ms before ${new Date(at).toISOString()}, less the lag's growth`,
  );
const TODAY = utcDay(new Date(NOW));
const YESTERDAY = utcDay(new Date(NOW - DAY_MS));
let version = 0;
async function write(...updates: FeatureUpdate[]) {
  await applyUpdates(
    c.redis,
    c.keys,
    updates.map((update, source) => ({ update, source })),
    // loads kept until their day's end plus 2 days: yesterday's too
    { chunk: 50, tombstoneTtlS: 60, loadTtlS: 2 * 86_400 },
  );
}
const lifecycle = (sku: string, value: 'active' | 'paused' | 'discontinued' | null): FeatureUpdate => ({
  feature: 'sku.lifecycle',
  sku,
  value,
  version: ++version,
  txid: '1',
});
const avail = (sku: string, fc: string, value: number | null): FeatureUpdate => ({
  feature: 'sku.available',
  sku,
  fc,
  value,
  version: ++version,
  txid: '1',
});
const cap = (fc: string, value: number | null): FeatureUpdate => ({
  feature: 'fc.capacity',
  fc,
  value,
  version: ++version,
  txid: '1',
});
const rank = (region: string, fc: string, value: number | null): FeatureUpdate => ({
  feature: 'region.rank',
  region,
  fc,
  value,
  version: ++version,
  txid: '1',
});
const load = (fc: string, day: string, delta: number): FeatureUpdate => ({
  feature: 'fc.load',
  fc,
  day,
  delta,
  txid: String(++version),
  id: version,
});

async function world() {
  await resetState(c);
  await write(
    rank('R1', 'F1', 1),
    rank('R1', 'F2', 2),
    rank('R1', 'F3', 3),
    rank('R1', 'F9', null),
    cap('F1', 10),
    cap('F2', 5),
    cap('F3', 100),
    load('F1', TODAY, 10), // F1 full today
    load('F2', YESTERDAY, 50), // F2 was full yesterday only
    lifecycle('ELIG', 'active'),
    avail('ELIG', 'F1', 3),
    avail('ELIG', 'F2', 2),
    lifecycle('FULL', 'active'),
    avail('FULL', 'F1', 3),
    lifecycle('NONE', 'active'),
    avail('NONE', 'F1', 0),
    avail('NONE', 'F7', 50),
    lifecycle('DISC', 'discontinued'),
    avail('DISC', 'F3', 9),
    lifecycle('PAUS', 'paused'),
    avail('PAUS', 'F3', 9),
    lifecycle('GONE', null),
  );
  await confirm(NOW - 2000, 2000);
}

describe('badge reader (library)', () => {
  beforeEach(world);
  /** The test store, as a reader is configured for it. */
  const store = { redis: c.redis, prefix: c.keys.prefix, partitions: c.keys.partitions.length };

  {
    it(`answers every reason in the order asked, with freshness`, async () => {
      const reader = createBadgeReader({
        ...store,
        staleAfterMs: 10_000,
        now: () => NOW,
      });
      const a = await reader.getBadges('R1', ['PAUS', 'ELIG', 'NOPE', 'FULL', 'NONE', 'DISC', 'GONE']);
      expect(a).toEqual({
        region: 'R1',
        asOf: asOfLagging(NOW, 2000),
        lagMs: lagOf(2000),
        stale: false,
        badges: [
          { sku: 'PAUS', eligible: false, fc: null, reason: 'paused' },
          { sku: 'ELIG', eligible: true, fc: 'F2', reason: 'eligible' }, // F1 is at capacity today
          { sku: 'NOPE', eligible: false, fc: null, reason: 'unknown' },
          { sku: 'FULL', eligible: false, fc: null, reason: 'fc_at_capacity' },
          { sku: 'NONE', eligible: false, fc: null, reason: 'out_of_stock' },
          { sku: 'DISC', eligible: false, fc: null, reason: 'discontinued' },
          { sku: 'GONE', eligible: false, fc: null, reason: 'unknown' }, // deleted SKU: tombstone
        ],
      });
    });
  }

  it('a region with no FCs answers out_of_stock for every known SKU', async () => {
    const reader = createBadgeReader({
      ...store,
      staleAfterMs: 10_000,
      now: () => NOW,
    });
    const a = await reader.getBadges('NOWHERE', ['ELIG', 'FULL', 'NOPE']);
    expect(a.badges.map((b) => b.reason)).toEqual(['out_of_stock', 'out_of_stock', 'unknown']);
  });

  it('FC load resets at midnight UTC without any event', async () => {
    let now = NOW; // 23:59:30 today: F1 is full
    const reader = createBadgeReader({
      ...store,
      staleAfterMs: 10_000,
      now: () => now,
    });
    expect((await reader.getBadge('R1', 'FULL')).reason).toBe('fc_at_capacity');
    now = NOW + 30_001; // 00:00:00.001 the next day
    expect(await reader.getBadge('R1', 'FULL')).toMatchObject({ eligible: true, fc: 'F1', reason: 'eligible' });
    // The day before, F1 had no load (its 10 units count today) and F2 was the full one.
    now = NOW - DAY_MS - 12 * 3_600_000 + 30_000; // 12:00 yesterday
    expect(await reader.getBadge('R1', 'FULL')).toMatchObject({ eligible: true, fc: 'F1' });
    await write(avail('ELIG', 'F1', 0));
    expect((await reader.getBadge('R1', 'ELIG')).reason).toBe('fc_at_capacity');
  });

  it('says stale when the drain has not confirmed recently, or never did', async () => {
    const reader = createBadgeReader({
      ...store,
      staleAfterMs: 1000,
      now: () => NOW,
    });
    expect((await reader.getBadges('R1', ['ELIG'])).stale).toBe(true); // 2 s old > 1 s bound
    await c.redis.del(c.keys.partitions[0].meta);
    expect(await reader.freshness()).toEqual({ asOf: null, lagMs: null, stale: true });
    await confirm(NOW - 10, 10);
    expect(await reader.freshness()).toMatchObject({ stale: false, lagMs: lagOf(10) });
  });

  // The lag is measured on the Redis server's clock (store/watermark.ts): the pipeline database's
  // clock 30 s ahead of this host's stamps the watermark 30 s in the future, and reads must still
  // go stale once the drain has not confirmed for staleAfterMs (they stayed fresh 30 s longer),
  // and answer an asOf that is not in the future (it claimed changes no snapshot had covered).
  it("goes stale on time when the pipeline database's clock runs ahead of the reader's", async () => {
    // 5 s: the read right after the confirmation must come within it on a loaded test machine
    // (the bug this guards kept reads fresh for 35 s)
    const reader = createBadgeReader({ ...store, staleAfterMs: 5_000 });
    const dbAhead = Date.now() + 30_000;
    await markCaughtUp(c.redis, c.keys, dbAhead, 0, null); // confirmed just now, by a clock 30 s ahead
    const readAt = Date.now();
    const fresh = await reader.freshness();
    expect(fresh.stale).toBe(false);
    // the asOf is not the database clock's: never in this host's future, and now - lagMs
    expect(Date.parse(fresh.asOf!)).toBeLessThanOrEqual(Date.now());
    expect(Date.parse(fresh.asOf!)).toBeGreaterThanOrEqual(readAt - fresh.lagMs!);
    await sleep(5_200); // the drain stopped
    const later = await reader.getBadges('R1', ['ELIG']);
    expect(later.stale).toBe(true);
    expect(later.lagMs).toBeGreaterThanOrEqual(5_200);
  });

  // The day whose loads count is this host's; a host clock behind Redis's across a midnight would
  // count yesterday's loads (a full FC of yesterday, a free one today: or the other way round),
  // and its own lag, shorter, would not show it.
  it("says stale when this host's clock and the Redis server's are in different days", async () => {
    const reader = createBadgeReader({ ...store, staleAfterMs: 10_000, now: () => Date.now() - DAY_MS });
    await markCaughtUp(c.redis, c.keys, Date.now(), 0, null);
    const a = await reader.getBadges('R1', ['ELIG']);
    expect(a.stale).toBe(true);
    const sameDay = createBadgeReader({ ...store, staleAfterMs: 10_000 });
    expect((await sameDay.getBadges('R1', ['ELIG'])).stale).toBe(false);
  });

  it("takes the larger of the Redis-clock lag and the reader's own, and no watermark without its Redis-clock time", async () => {
    const reader = createBadgeReader({ ...store, staleAfterMs: 1_000 });
    // written just now on Redis's clock, but of an asOf 5 s old by this host's: 5 s it is
    await markCaughtUp(c.redis, c.keys, Date.now() - 5_000, 0, null);
    const a = await reader.freshness();
    expect(a.stale).toBe(true);
    expect(a.lagMs).toBeGreaterThanOrEqual(5_000);
    // a watermark from a drain before the Redis-clock time was written confirms nothing
    await markCaughtUp(c.redis, c.keys, Date.now(), 0, null);
    expect((await reader.freshness()).stale).toBe(false);
    for (const p of c.keys.partitions) await c.redis.hdel(p.meta, FIELD.caughtUpClock);
    expect(await reader.freshness()).toEqual({ asOf: null, lagMs: null, stale: true });
  });

  it("the store's freshness alone is not held back by a waiting letter of the empty region (r:), a region's read is", async () => {
    const reader = createBadgeReader({ ...store, staleAfterMs: 10_000, now: () => NOW });
    for (const p of c.keys.partitions) await c.redis.hset(p.held, 'r:', String(Date.now()), 'r:R1', String(Date.now()));
    try {
      expect((await reader.freshness()).stale).toBe(false);
      expect((await reader.getBadges('R1', ['ELIG'])).stale).toBe(true);
    } finally {
      for (const p of c.keys.partitions) await c.redis.hdel(p.held, 'r:', 'r:R1');
    }
  });

  it('answers 200 SKUs in one call and refuses 201', async () => {
    const reader = createBadgeReader({
      ...store,
      staleAfterMs: 10_000,
    });
    const skus = Array.from({ length: 200 }, (_, i) => (i === 199 ? 'ELIG' : `X${i}`));
    const a = await reader.getBadges('R1', skus);
    expect(a.badges).toHaveLength(200);
    expect(a.badges[199].sku).toBe('ELIG');
    await expect(reader.getBadges('R1', [...skus, 'ONE-MORE'])).rejects.toThrow(/at most 200/);
  });
});

describe('HTTP API', () => {
  let api: Awaited<ReturnType<typeof startTestApi>>;
  beforeAll(async () => {
    await world();
    api = await startTestApi(c.redis, c.keys.prefix, 10_000, () => NOW, c.keys.partitions.length);
  });
  beforeEach(() => confirm(NOW - 2000, 2000)); // each test's lag counts from its own confirmation
  afterAll(() => api.close());

  it('GET /v1/badges answers the contract shape, in the order asked', async () => {
    const r = await get(`${api.base}/v1/badges?region=R1&skus=FULL,ELIG`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/json');
    expect(r.body).toEqual({
      region: 'R1',
      asOf: asOfLagging(NOW, 2000),
      stale: false,
      lagMs: lagOf(2000),
      badges: [
        { sku: 'FULL', eligible: false, fc: null, reason: 'fc_at_capacity' },
        { sku: 'ELIG', eligible: true, fc: 'F2', reason: 'eligible' },
      ],
    });
  });

  it('GET /v1/badges/{sku} answers one badge with stale and lagMs', async () => {
    const r = await get(`${api.base}/v1/badges/ELIG?region=R1`);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      sku: 'ELIG',
      eligible: true,
      fc: 'F2',
      reason: 'eligible',
      stale: false,
      lagMs: lagOf(2000),
      asOf: asOfLagging(NOW, 2000),
    });
  });

  it('GET /healthz and /metrics', async () => {
    expect(await get(`${api.base}/healthz`)).toMatchObject({ status: 200, body: { status: 'ok', redis: 'up' } });
    const m = await get(`${api.base}/metrics`);
    expect(m.status).toBe(200);
    expect(m.body).toMatch(/fresh_badges_api_requests_total\{route="badges",status="200"\} \d+/);
    expect(m.body).toMatch(/fresh_badges_api_request_seconds_bucket/);
  });

  const many = (n: number) => Array.from({ length: n }, (_, i) => `S${i}`).join(',');
  const bad: [string, string, number, RegExp][] = [
    ['missing region', '/v1/badges?skus=A', 400, /missing query parameter: region/],
    ['empty region', '/v1/badges?region=&skus=A', 400, /missing query parameter: region/],
    ['malformed region', '/v1/badges?region=R%201&skus=A', 400, /malformed region/],
    ['region twice', '/v1/badges?region=R1&region=R2&skus=A', 400, /more than once/],
    ['missing skus', '/v1/badges?region=R1', 400, /missing query parameter: skus/],
    ['empty skus', '/v1/badges?region=R1&skus=', 400, /missing query parameter: skus/],
    ['empty sku in list', '/v1/badges?region=R1&skus=A,,B', 400, /empty sku/],
    ['trailing comma', '/v1/badges?region=R1&skus=A,', 400, /empty sku/],
    ['malformed sku', '/v1/badges?region=R1&skus=A,%3Cscript%3E', 400, /malformed sku/],
    ['over-long sku', `/v1/badges?region=R1&skus=${'x'.repeat(129)}`, 400, /malformed sku/],
    ['duplicate skus', '/v1/badges?region=R1&skus=A,B,A', 400, /duplicate sku in the list: A/],
    ['201 skus', `/v1/badges?region=R1&skus=${many(201)}`, 400, /too many skus: 201/],
    ['skus twice', '/v1/badges?region=R1&skus=A&skus=B', 400, /more than once/],
    ['single: missing region', '/v1/badges/ELIG', 400, /missing query parameter: region/],
    ['single: malformed sku', '/v1/badges/%3Cx%3E?region=R1', 400, /malformed sku/],
    ['single: bad escape', '/v1/badges/%E0%A4%A?region=R1', 400, /malformed sku/],
    ['single: nested path', '/v1/badges/A/B?region=R1', 400, /malformed sku/],
    ['unknown route', '/v2/nothing', 404, /no such route/],
    ['root', '/', 404, /no such route/],
    ['over-long query string', `/v1/badges?region=R1&skus=${'A'.repeat(81_000)}`, 414, /too long/],
  ];
  it.each(bad)('%s -> %s with a JSON error', async (_name, path, status, message) => {
    const r = await get(`${api.base}${path}`);
    expect(r.status).toBe(status);
    expect(r.headers.get('content-type')).toBe('application/json');
    expect(r.body.error).toMatch(message);
  });

  // The contract allows 200 ids of 128 characters in one request: about 26,000 characters of URL,
  // about 77,000 with every character an encoder may escape escaped.
  it('answers the longest request the contract allows', async () => {
    const ids = Array.from({ length: 200 }, (_, i) => `${String(i).padStart(3, '0')}${'x'.repeat(125)}`);
    const r = await get(`${api.base}/v1/badges?region=R1&skus=${ids.join(',')}`);
    expect(r.status).toBe(200);
    expect(r.body.badges).toHaveLength(200);
  });

  it('answers the longest request the contract allows with every character an encoder may escape escaped', async () => {
    // ':' is in the ids' alphabet; URLSearchParams writes it %3A, and the commas %2C
    const ids = Array.from({ length: 200 }, (_, i) => `${String(i).padStart(3, '0')}${':'.repeat(125)}`);
    const query = new URLSearchParams({ region: ':'.repeat(128), skus: ids.join(',') }).toString();
    expect(query.length).toBeGreaterThan(76_000);
    const r = await get(`${api.base}/v1/badges?${query}`);
    expect(r.status).toBe(200);
    expect(r.body.badges.map((b: { sku: string }) => b.sku)).toEqual(ids);
  });

  it('wrong methods get 405 with Allow', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const r = await get(`${api.base}/v1/badges?region=R1&skus=A`, method);
      expect(r.status).toBe(405);
      expect(r.headers.get('allow')).toBe('GET, HEAD');
      expect(r.body.error).toMatch(/not allowed/);
    }
  });

  it('a request target in absolute form is served like its path; CONNECT gets a 405, not a closed socket', async () => {
    const port = Number(new URL(api.base).port);
    const byPath = await get(`${api.base}/v1/badges/ELIG?region=R1`);
    expect(byPath.status).toBe(200);
    const absolute = await rawRequest(
      port,
      `GET http://localhost:${port}/v1/badges/ELIG?region=R1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`,
    );
    expect(absolute).toMatch(/^HTTP\/1.1 200/);
    expect(absolute).toContain('"sku":"ELIG"');
    expect(
      await rawRequest(port, `GET HTTP://localhost:${port}?x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`),
    ).toMatch(/^HTTP\/1.1 404/); // the path "/": no such route
    const sockets = () => new Promise<number>((r) => api.server.getConnections((_, n) => r(n)));
    const before = await sockets();
    const connect = await rawRequest(port, `CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n`);
    expect(connect).toMatch(/^HTTP\/1.1 405/);
    expect(connect).toMatch(/allow: GET, HEAD/i);
    // clients that reset the connection at once: the process lives on, and no socket is left open
    for (let i = 0; i < 10; i++)
      await new Promise<void>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.write('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', () => {
            s.resetAndDestroy();
            resolve();
          });
        });
        s.on('error', () => resolve());
      });
    await eventually(async () => (await sockets()) <= before, 5_000, 'the CONNECT sockets closed by the server');
    expect((await get(`${api.base}/healthz`)).status).toBe(200);
  });

  it('a malformed HTTP request gets a 400, and the server keeps serving', async () => {
    const port = Number(new URL(api.base).port);
    expect(await rawRequest(port, 'GARBAGE\r\n\r\n')).toMatch(/^HTTP\/1.1 400/);
    expect(await rawRequest(port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(120_000)}\r\n\r\n`)).toMatch(
      /^HTTP\/1.1 431/,
    );
    expect((await get(`${api.base}/healthz`)).status).toBe(200);
  });
});
