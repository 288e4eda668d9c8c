/**
 * Prometheus metrics of the worker (prom-client), served at http://127.0.0.1:WORKER_METRICS_PORT/metrics:
 * drain lag in rows and seconds, batch size and duration, apply latency, end-to-end freshness
 * (source change -> visible in Redis), dead letters, open write transactions (information: they
 * hold back compaction and vacuum, not freshness).
 */
import http from 'node:http';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import client from 'prom-client';
import { names } from '../config';
import { openTransactions, pendingRows } from '../outbox';
import type { StoreKeys } from '../store/keys';
import type { DependencyHealth } from './dependency-health';
import { readWatermark } from '../store/watermark';
import type { DrainMetrics } from '../activities/metrics';

export type { DrainMetrics };

export function createWorkerMetrics() {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'fresh_badges_worker_' });
  const batchRows = new client.Histogram({
    name: 'fresh_badges_drain_batch_rows',
    help: 'outbox rows per applied batch',
    buckets: [1, 10, 100, 500, 1000, 5000, 20000, 50000],
    registers: [registry],
  });
  const batchSeconds = new client.Histogram({
    name: 'fresh_badges_drain_batch_seconds',
    help: 'duration of an applied batch (read, apply, commit)',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const applySeconds = new client.Histogram({
    name: 'fresh_badges_drain_apply_seconds',
    help: 'Redis apply latency per batch',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry],
  });
  const freshness = new client.Histogram({
    name: 'fresh_badges_freshness_seconds',
    help: 'end-to-end freshness: source change written -> visible in Redis',
    buckets: [0.05, 0.1, 0.25, 0.5, 0.75, 1, 2, 5, 10, 30, 60, 300],
    registers: [registry],
  });
  const deadLetters = new client.Counter({
    name: 'fresh_badges_dead_letters_total',
    help: 'changes sent to the dead-letter table',
    registers: [registry],
  });
  const divergences = new client.Counter({
    name: 'fresh_badges_store_divergence_total',
    help: 'times the online store was found behind or ahead of the drain cursor and re-aligned (kind: behind = re-delivered, behind-rebuild, ahead = rebuilt; truncate = emptied and refilled after a captured TRUNCATE)',
    labelNames: ['kind'],
    registers: [registry],
  });
  const verifyRuns = new client.Counter({
    name: 'fresh_badges_verify_runs_total',
    help: 'scheduled sampled verify runs completed',
    registers: [registry],
  });
  const verifyMismatches = new client.Counter({
    name: 'fresh_badges_verify_mismatches_total',
    help: 'differences between the store and the source that a scheduled sampled verify found after the drain caught up (feature: lifecycle, available, capacity, rank, load, badge)',
    labelNames: ['feature'],
    registers: [registry],
  });
  const verifyRepairs = new client.Counter({
    name: 'fresh_badges_verify_repairs_total',
    help: 'source rows re-emitted through the outbox (and load recomputations) by the scheduled verify to repair what it found',
    registers: [registry],
  });
  const openXacts = new client.Gauge({
    name: 'fresh_badges_open_transactions',
    help: 'write transactions open in the PostgreSQL cluster (they delay compaction and vacuum, not freshness)',
    registers: [registry],
  });
  const oldestXact = new client.Gauge({
    name: 'fresh_badges_oldest_open_transaction_seconds',
    help: 'age of the oldest open write transaction (0: none)',
    registers: [registry],
  });
  const lagRows = new client.Gauge({
    name: 'fresh_badges_drain_lag_rows',
    help: 'outbox rows not yet applied (capped at 1,000,000)',
    registers: [registry],
  });
  const lagSeconds = new client.Gauge({
    name: 'fresh_badges_drain_lag_seconds',
    help: "now - the drain's last caught-up confirmation",
    registers: [registry],
  });
  const waitingDead = new client.Gauge({
    name: 'fresh_badges_dead_letters_waiting',
    help: 'dead letters not yet retried',
    registers: [registry],
  });

  const drain: DrainMetrics = {
    batch(rows, seconds, apply) {
      batchRows.observe(rows);
      batchSeconds.observe(seconds);
      applySeconds.observe(apply);
    },
    freshness(sourceTimesMs, visibleAtMs) {
      for (const t of sourceTimesMs) freshness.observe(Math.max(0, visibleAtMs - t) / 1000);
    },
    deadLetters: (n) => deadLetters.inc(n),
    divergence: (kind) => divergences.inc({ kind }),
    verified(byFeature, repairs) {
      verifyRuns.inc();
      // every label appears (at 0) from the first run on, so a rate() over it is defined
      for (const feature of ['lifecycle', 'available', 'capacity', 'rank', 'load', 'badge'])
        verifyMismatches.inc({ feature }, byFeature[feature] ?? 0);
      verifyRepairs.inc(repairs);
    },
  };

  /** Refreshes the lag gauges every few seconds (two cheap queries). */
  function watchLag(
    pool: pg.Pool,
    redis: Redis,
    keys: StoreKeys,
    opts: { everyMs?: number; warnOpenAfterMs?: number } = {},
  ): () => void {
    const everyMs = opts.everyMs ?? 5_000;
    let warnedPid: number | null = null;
    const tick = async () => {
      try {
        lagRows.set((await pendingRows(pool, names.drainConsumer, 1_000_000)).rows);
        const r = await pool.query(`select count(*)::int as dead from pipeline.dead_letters where retried_at is null`);
        waitingDead.set(r.rows[0].dead);
        const open = await openTransactions(pool);
        openXacts.set(open.count);
        oldestXact.set(open.oldest ? open.oldest.ageMs / 1000 : 0);
        // Once per offending backend: it no longer delays freshness, but outbox compaction and
        // vacuum cannot pass it.
        if (
          open.oldest &&
          opts.warnOpenAfterMs !== undefined &&
          open.oldest.ageMs >= opts.warnOpenAfterMs &&
          warnedPid !== open.oldest.pid
        ) {
          warnedPid = open.oldest.pid;
          console.warn(
            `[worker] a write transaction has been open for ${Math.round(open.oldest.ageMs / 1000)} s (pid ${open.oldest.pid}, application ${JSON.stringify(open.oldest.application)}, ${open.oldest.state}): it holds back outbox compaction and vacuum (not freshness)`,
          );
        }
        const w = await readWatermark(redis, keys);
        if (w.caughtUpAt !== null) lagSeconds.set((Date.now() - w.caughtUpAt) / 1000);
      } catch {
        // a database hiccup: the next tick tries again
      }
    };
    const timer = setInterval(() => void tick(), everyMs);
    timer.unref();
    void tick();
    return () => clearInterval(timer);
  }

  /** `/metrics`, and `/healthz` with each dependency's state (200 all up, 503 otherwise). */
  function serve(port: number, host = '127.0.0.1', health?: () => Promise<DependencyHealth>): Promise<http.Server> {
    const server = http.createServer(async (req, res) => {
      if (req.url === '/healthz' && health) {
        const dependencies = await health();
        const up = Object.values(dependencies).every((d) => d.status === 'up');
        res.writeHead(up ? 200 : 503, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ status: up ? 'ok' : 'degraded', dependencies }));
      } else if (req.url === '/metrics') {
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(await registry.metrics());
      } else {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'no such route; metrics are at /metrics' }));
      }
    });
    return new Promise((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(err.code === 'EADDRINUSE' ? new Error(`WORKER_METRICS_PORT ${port} is already taken`) : err),
      );
      server.listen(port, host, () => resolve(server));
    });
  }

  return { registry, drain, watchLag, serve };
}
