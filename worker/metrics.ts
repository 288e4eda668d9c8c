/**
 * Prometheus metrics of the worker (prom-client), served at http://127.0.0.1:WORKER_METRICS_PORT/metrics:
 * drain lag in rows and seconds, batch size and duration, apply latency, end-to-end freshness
 * (source change -> visible in Redis), dead letters, open write transactions (information: they
 * hold back compaction and vacuum, not freshness).
 */
import type { CaptureSourceStatus } from '../capture/capture-status';
import http from 'node:http';
import type { StoreRedis } from '../store/redis-client';
import type pg from 'pg';
import client from 'prom-client';
import { drainPendingRows, openTransactions } from '../outbox';
import { WAITING_DEAD_LETTER } from '../activities/dead-letters/waiting';
import type { StoreKeys } from '../store/keys';
import type { DependencyHealth } from './dependency-health';
import { readWatermark } from '../store/watermark';
import type { DrainMetrics } from '../activities/metrics';
import { logger } from '../log/logger';

export type { DrainMetrics };

/** Every metric of the worker, registered in `registry`: one line each. */
function defineMetrics(registry: client.Registry) {
  // One line per metric: name, help and (histograms) buckets or (labelled counters) label names.
  const histogram = (name: string, help: string, buckets: number[]) =>
    new client.Histogram({ name, help, buckets, registers: [registry] });
  const counter = (name: string, help: string, labelNames: string[] = []) =>
    new client.Counter({ name, help, labelNames, registers: [registry] });
  const gauge = (name: string, help: string) => new client.Gauge({ name, help, registers: [registry] });
  const batchRows = histogram(
    'fresh_badges_drain_batch_rows',
    'outbox rows per applied batch',
    [1, 10, 100, 500, 1000, 5000, 20000, 50000],
  );
  const batchSeconds = histogram(
    'fresh_badges_drain_batch_seconds',
    'duration of an applied batch (read, apply, commit)',
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  );
  const applySeconds = histogram(
    'fresh_badges_drain_apply_seconds',
    'StoreRedis apply latency per batch',
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
  );
  const freshness = histogram(
    'fresh_badges_freshness_seconds',
    'end-to-end freshness: source change written -> visible in StoreRedis',
    [0.05, 0.1, 0.25, 0.5, 0.75, 1, 2, 5, 10, 30, 60, 300],
  );
  const deadLetters = counter('fresh_badges_dead_letters_total', 'changes sent to the dead-letter table');
  const divergences = counter(
    'fresh_badges_store_divergence_total',
    'times the online store was found behind or ahead of the drain cursor and re-aligned (kind: behind = re-delivered, behind-rebuild, ahead = rebuilt; truncate = emptied and refilled after a captured TRUNCATE)',
    ['kind'],
  );
  const verifyRuns = counter('fresh_badges_verify_runs_total', 'scheduled sampled verify runs completed');
  const verifyMismatches = counter(
    'fresh_badges_verify_mismatches_total',
    'differences between the store and the source that a scheduled sampled verify found after the drain caught up (feature: lifecycle, available, capacity, rank, load, badge)',
    ['feature'],
  );
  const verifyUnjudged = counter(
    'fresh_badges_verify_unjudged_total',
    'differences a scheduled sampled verify left unjudged (neither counted as mismatches nor repaired) because the drain had not caught up within its settle time',
  );
  const verifyRepairs = counter(
    'fresh_badges_verify_repairs_total',
    'source rows re-emitted through the outbox (and load recomputations) by the scheduled verify to repair what it found',
  );
  const openXacts = gauge(
    'fresh_badges_open_transactions',
    'write transactions open in the PostgreSQL cluster (they delay compaction and vacuum, not freshness)',
  );
  const oldestXact = gauge(
    'fresh_badges_oldest_open_transaction_seconds',
    'age of the oldest open write transaction (0: none)',
  );
  const lagRows = gauge('fresh_badges_drain_lag_rows', 'outbox rows not yet applied (capped at 1,000,000)');
  const lagSeconds = gauge('fresh_badges_drain_lag_seconds', "age of the drain's caught-up time, as reads measure it");
  const waitingDead = gauge(
    'fresh_badges_dead_letters_waiting',
    'dead letters neither applied by a retry nor discarded',
  );
  return {
    batchRows,
    batchSeconds,
    applySeconds,
    freshness,
    deadLetters,
    divergences,
    verifyRuns,
    verifyMismatches,
    verifyRepairs,
    verifyUnjudged,
    openXacts,
    oldestXact,
    lagRows,
    lagSeconds,
    waitingDead,
    ...defineCaptureMetrics(registry),
  };
}

/** Capture from the WAL (CAPTURE_MODE=logical): each source's slot and coverage, labelled by source. */
function defineCaptureMetrics(registry: client.Registry) {
  const sourceGauge = (name: string, help: string) =>
    new client.Gauge({ name, help, labelNames: ['source'], registers: [registry] });
  const slotRetained = sourceGauge(
    'fresh_badges_capture_slot_retained_bytes',
    'WAL the source keeps for the capture slot (current WAL position - restart_lsn); CAPTURE_MODE=logical',
  );
  const captureLag = sourceGauge(
    'fresh_badges_capture_lag_seconds',
    'now - the time up to which every change committed on the source is in the outbox; CAPTURE_MODE=logical',
  );
  const slotLost = sourceGauge(
    'fresh_badges_capture_slot_lost',
    '1 when the source slot was lost and created again: its reads stay stale until the store is refilled',
  );

  return { slotRetained, captureLag, slotLost };
}

type WorkerMetricSet = ReturnType<typeof defineMetrics>;

/** What the drain's activities report (activities/metrics.ts), onto the metrics. */
function drainMetricsOf(m: WorkerMetricSet): DrainMetrics {
  return {
    batch(rows, seconds, apply) {
      m.batchRows.observe(rows);
      m.batchSeconds.observe(seconds);
      m.applySeconds.observe(apply);
    },
    freshness(sourceTimesMs, visibleAtMs) {
      for (const t of sourceTimesMs) m.freshness.observe(Math.max(0, visibleAtMs - t) / 1000);
    },
    deadLetters: (n) => m.deadLetters.inc(n),
    divergence: (kind) => m.divergences.inc({ kind }),
    verified(byFeature, repairs, unjudged = 0) {
      m.verifyRuns.inc();
      // every label appears (at 0) from the first run on, so a rate() over it is defined
      for (const feature of ['lifecycle', 'available', 'capacity', 'rank', 'load', 'badge'])
        m.verifyMismatches.inc({ feature }, byFeature[feature] ?? 0);
      m.verifyRepairs.inc(repairs);
      m.verifyUnjudged.inc(unjudged);
    },
  };
}

/**
 * Refreshes the lag gauges every few seconds (a few cheap queries). Each source is read on its
 * own: when the pipeline database is down, the store's staleness (read from Redis) still moves,
 * and the capture gauges read +Inf, so the alerts fire during the outage they exist for instead
 * of every gauge keeping its last healthy value.
 */
function watchLag(
  m: WorkerMetricSet,
  pool: pg.Pool,
  redis: StoreRedis,
  keys: StoreKeys,
  opts: {
    everyMs?: number;
    warnOpenAfterMs?: number;
    capture?: () => Promise<CaptureSourceStatus[]>;
    /** The capture sources configured, known before their status is first read. */
    captureSources?: string[];
  } = {},
): () => void {
  const everyMs = opts.everyMs ?? 5_000;
  const warnOpen = openTransactionWarning(opts.warnOpenAfterMs);
  // every capture source configured or seen: +Inf for each when their status cannot be read
  const sources = new Set<string>(opts.captureSources ?? []);
  const tick = async () => {
    await Promise.all([
      readWatermark(redis, keys).then(
        // unknown (a partition emptied, or never confirmed), or Redis unreadable: +Inf, so the
        // staleness alert fires rather than the gauge keeping its last fresh value
        (w) => m.lagSeconds.set(w.lagMs === null ? Infinity : w.lagMs / 1000),
        () => m.lagSeconds.set(Infinity),
      ),
      pipelineGauges(m, pool, keys, warnOpen).catch(() => undefined), // a database hiccup: the next tick tries again
      captureGauges(m, sources, opts.capture),
    ]);
  };
  const timer = setInterval(() => void tick(), everyMs);
  timer.unref();
  void tick();
  return () => clearInterval(timer);
}

/** What the drain owes, the waiting dead letters, and the open write transactions. */
async function pipelineGauges(
  m: WorkerMetricSet,
  pool: pg.Pool,
  keys: StoreKeys,
  warnOpen: (open: Awaited<ReturnType<typeof openTransactions>>) => void,
): Promise<void> {
  m.lagRows.set((await drainPendingRows(pool, keys, 1_000_000)).rows);
  const r = await pool.query(`select count(*)::int as dead from pipeline.dead_letters where ${WAITING_DEAD_LETTER}`);
  m.waitingDead.set(r.rows[0].dead);
  const open = await openTransactions(pool);
  m.openXacts.set(open.count);
  m.oldestXact.set(open.oldest ? open.oldest.ageMs / 1000 : 0);
  warnOpen(open);
}

/**
 * Once per offending backend: a write transaction open that long no longer delays freshness, but
 * outbox compaction and vacuum cannot pass it.
 */
function openTransactionWarning(afterMs: number | undefined) {
  let warnedPid: number | null = null;
  return (open: Awaited<ReturnType<typeof openTransactions>>) => {
    if (!open.oldest || afterMs === undefined || open.oldest.ageMs < afterMs || warnedPid === open.oldest.pid) return;
    warnedPid = open.oldest.pid;
    logger('worker').warn(
      `a write transaction has been open for ${Math.round(open.oldest.ageMs / 1000)} s (pid ${open.oldest.pid}, application ${JSON.stringify(open.oldest.application)}, ${open.oldest.state}): it holds back outbox compaction and vacuum (not freshness)`,
    );
  };
}

/** Each capture source's slot retention, lag and loss; when they cannot be read, every known source's lag +Inf. */
async function captureGauges(
  m: WorkerMetricSet,
  sources: Set<string>,
  capture: (() => Promise<CaptureSourceStatus[]>) | undefined,
): Promise<void> {
  if (!capture) return;
  let status: CaptureSourceStatus[];
  try {
    status = await capture();
  } catch {
    for (const source of sources) m.captureLag.set({ source }, Infinity);
    return;
  }
  for (const c of status) {
    sources.add(c.source);
    if (c.slotState) m.slotRetained.set({ source: c.source }, c.slotState.retainedBytes);
    m.captureLag.set(
      { source: c.source },
      c.coveredAtMs === null ? Infinity : (Date.now() - c.coveredAtMs) / 1000, // never covered: +Inf
    );
    m.slotLost.set({ source: c.source }, c.lostAtMs === null ? 0 : 1);
  }
}

/** `/metrics`, and `/healthz` with each dependency's state (200 all up, 503 otherwise). */
function serveMetrics(
  registry: client.Registry,
  port: number,
  host = '127.0.0.1',
  health?: () => Promise<DependencyHealth>,
): Promise<http.Server> {
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

export function createWorkerMetrics() {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'fresh_badges_worker_' });
  const m = defineMetrics(registry);
  return {
    registry,
    drain: drainMetricsOf(m),
    watchLag: (pool: pg.Pool, redis: StoreRedis, keys: StoreKeys, opts?: Parameters<typeof watchLag>[4]) =>
      watchLag(m, pool, redis, keys, opts),
    serve: (port: number, host?: string, health?: () => Promise<DependencyHealth>) =>
      serveMetrics(registry, port, host, health),
  };
}
