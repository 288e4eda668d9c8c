/**
 * Prometheus metrics of the worker (prom-client), served at http://127.0.0.1:WORKER_METRICS_PORT/metrics:
 * drain lag in rows and seconds, batch size and duration, apply latency, end-to-end freshness
 * (source change -> visible in Redis), dead letters, horizon stalls.
 */
import http from 'node:http';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import client from 'prom-client';
import { names } from '../config';
import { readCursor } from '../activities/drain/outbox-reader';
import type { StoreKeys } from '../store/keys';
import { readWatermark } from '../store/watermark';

export interface DrainMetrics {
  batch(rows: number, seconds: number, applySeconds: number): void;
  freshness(sourceTimesMs: number[], visibleAtMs: number): void;
  deadLetters(n: number): void;
  stalled(ms: number): void;
}

export function createWorkerMetrics() {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'fresh_badges_worker_' });
  const batchRows = new client.Histogram({ name: 'fresh_badges_drain_batch_rows', help: 'outbox rows per applied batch', buckets: [1, 10, 100, 500, 1000, 5000, 20000, 50000], registers: [registry] });
  const batchSeconds = new client.Histogram({ name: 'fresh_badges_drain_batch_seconds', help: 'duration of an applied batch (read, apply, commit)', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [registry] });
  const applySeconds = new client.Histogram({ name: 'fresh_badges_drain_apply_seconds', help: 'Redis apply latency per batch', buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1], registers: [registry] });
  const freshness = new client.Histogram({
    name: 'fresh_badges_freshness_seconds',
    help: 'end-to-end freshness: source change written -> visible in Redis',
    buckets: [0.05, 0.1, 0.25, 0.5, 0.75, 1, 2, 5, 10, 30, 60, 300],
    registers: [registry],
  });
  const deadLetters = new client.Counter({ name: 'fresh_badges_dead_letters_total', help: 'changes sent to the dead-letter table', registers: [registry] });
  const stall = new client.Gauge({ name: 'fresh_badges_horizon_stall_seconds', help: 'how long the oldest change has waited behind an open transaction (0: none)', registers: [registry] });
  const lagRows = new client.Gauge({ name: 'fresh_badges_drain_lag_rows', help: 'outbox rows not yet applied (approximate: by id)', registers: [registry] });
  const lagSeconds = new client.Gauge({ name: 'fresh_badges_drain_lag_seconds', help: 'now - the drain\'s last caught-up confirmation', registers: [registry] });
  const waitingDead = new client.Gauge({ name: 'fresh_badges_dead_letters_waiting', help: 'dead letters not yet retried', registers: [registry] });

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
    stalled: (ms) => stall.set(ms / 1000),
  };

  /** Refreshes the lag gauges every few seconds (two cheap queries). */
  function watchLag(pool: pg.Pool, redis: Redis, keys: StoreKeys, everyMs = 5_000): () => void {
    const tick = async () => {
      try {
        const cursor = await readCursor(pool, names.drainConsumer);
        const r = await pool.query(`select coalesce(max(id), 0)::text as max, (select count(*) from pipeline.dead_letters where retried_at is null)::int as dead from pipeline.outbox`);
        lagRows.set(Math.max(0, Number(r.rows[0].max) - Number(cursor.id)));
        waitingDead.set(r.rows[0].dead);
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

  function serve(port: number, host = '127.0.0.1'): Promise<http.Server> {
    const server = http.createServer(async (req, res) => {
      if (req.url === '/metrics') {
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(await registry.metrics());
      } else {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'no such route; metrics are at /metrics' }));
      }
    });
    return new Promise((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE' ? new Error(`WORKER_METRICS_PORT ${port} is already taken`) : err));
      server.listen(port, host, () => resolve(server));
    });
  }

  return { registry, drain, watchLag, serve };
}
