/**
 * The Grafana dashboard and the Prometheus alert rules shipped in docs/monitoring/ refer only to
 * metrics (and labels) the real processes expose: the worker (worker/main.ts, a child process
 * with its metrics port) and the read API (serving/main.ts, another), after a little traffic so
 * labelled series exist. promtool is not installed here, so the rules' shape is checked by hand.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as prettier from 'prettier';
import { seedCatalogue } from '../../simulator/catalogue';
import { sampledVerifyWorkflow } from '../../workflows';
import { spawnApi } from '../support/api-process';
import { eventually, resetState, sharedTestServer, startDrain, temporalClient, testClients } from '../support/env';
import { familyOf, readExposition, type MetricFamily } from '../support/prom-text';
import { promqlRefs } from '../support/promql';
import { freePort } from '../support/redis-process';
import { exited, spawnWorker } from '../support/worker-process';
import { parseYamlSubset } from '../support/yaml-subset';

const ROOT = path.resolve(__dirname, '..', '..');
const read = (file: string) => fs.readFileSync(path.join(ROOT, file), 'utf8');
const taskQueue = `monitoring-${process.pid}`;
const c = testClients({ TEMPORAL_TASK_QUEUE: taskQueue });
const { address, bundlePath } = sharedTestServer();
let worker: ChildProcess;
let api: Awaited<ReturnType<typeof spawnApi>>;
let temporal: Awaited<ReturnType<typeof temporalClient>>;
let workerMetrics: string;
let families: Map<string, MetricFamily>;

/** Prometheus' own series, and the labels its scrape adds to every series. */
const PROMETHEUS_METRICS = new Set(['up']);
const SCRAPE_LABELS = new Set(['job', 'instance', 'le']);
/**
 * Referenced families this run cannot give samples (so their labels are not checked here): the
 * capture gauges are set only with CAPTURE_MODE=logical, divergences only after a store fault.
 */
const NO_SAMPLES_HERE = new Set([
  'fresh_badges_capture_slot_retained_bytes',
  'fresh_badges_capture_lag_seconds',
  'fresh_badges_capture_slot_lost',
  'fresh_badges_store_divergence_total',
]);

const dashboard = JSON.parse(read('docs/monitoring/grafana-dashboard.json'));
const dashboardExprs = (dashboard.panels as { title: string; targets?: { expr: string }[] }[]).flatMap((p) =>
  (p.targets ?? []).map((t) => ({ where: `dashboard panel "${p.title}"`, expr: t.expr })),
);
const alertsText = read('docs/monitoring/alerts.yml');
const alerts = parseYamlSubset(alertsText) as { groups: { name: string; rules: Record<string, unknown>[] }[] };
const alertExprs = alerts.groups.flatMap((g) =>
  g.rules.map((r) => ({ where: `alert ${String(r.alert)}`, expr: String(r.expr) })),
);

beforeAll(async () => {
  await resetState(c);
  await seedCatalogue(c.pool, { skus: 40, fcs: 3, regions: 2, fcsPerRegion: 2, fcsPerSku: 2 });
  const metricsPort = await freePort();
  worker = spawnWorker(c.config, address, bundlePath, { WORKER_METRICS_PORT: String(metricsPort) });
  api = await spawnApi(c.config, address);
  temporal = await temporalClient(address);
  await driveTraffic();
  workerMetrics = `http://127.0.0.1:${metricsPort}/metrics`;
  // the drain's batches, and the lag gauges' first tick, are on the worker's endpoint
  await eventually(
    async () => /^fresh_badges_drain_batch_rows_count \d*[1-9]/m.test(await (await fetch(workerMetrics)).text()),
    30_000,
    "the worker's /metrics to show applied batches",
  );
  families = readExposition(await (await fetch(`${api.base}/metrics`)).text());
  readExposition(await (await fetch(workerMetrics)).text(), families);
});

/** A drain run, a sampled verify and reads that answer 200, 400 and 404. */
async function driveTraffic(): Promise<void> {
  const drain = await startDrain(temporal.client, c.config, {
    taskQueue,
    workflowId: `drain-monitoring-${Date.now()}`,
    args: [{ intervalMs: 600_000, idleWaitMs: 200 }],
  });
  try {
    await eventually(
      async () => {
        const read = await fetch(`${api.base}/v1/badges?region=R-00&skus=SKU-0000001`);
        return ((await read.json()) as { stale: boolean }).stale === false;
      },
      30_000,
      'fresh reads after the first drain',
    );
    await temporal.client.workflow.execute(sampledVerifyWorkflow, {
      taskQueue,
      workflowId: `verify-sampled-monitoring-${Date.now()}`,
      args: [{ sample: 10 }],
    });
  } finally {
    await drain.terminate('monitoring test done').catch(() => undefined);
  }
  for (const url of ['/v1/badges/SKU-0000002?region=R-01', '/v1/badges?region=R-00', '/no-such-route'])
    await fetch(`${api.base}${url}`);
}

afterAll(async () => {
  api?.child.kill('SIGTERM');
  worker?.kill('SIGTERM');
  await Promise.all([api && exited(api.child), worker && exited(worker)]);
  await temporal?.close();
  await c.close();
});

describe('docs/monitoring: dashboard and alert rules against the real /metrics', () => {
  it('every metric the dashboard and the alert rules name is exposed by the worker or the read API', () => {
    const missing: string[] = [];
    for (const { where, expr } of [...dashboardExprs, ...alertExprs])
      for (const m of promqlRefs(expr).metrics)
        if (!PROMETHEUS_METRICS.has(m.name) && !familyOf(m.name, families)) missing.push(`${where}: ${m.name}`);
    expect(missing).toEqual([]);
    expect(dashboardExprs.length).toBeGreaterThan(20);
    // the slot metric the issue names, on the worker's endpoint
    expect(families.get('fresh_badges_capture_slot_retained_bytes')?.type).toBe('gauge');
  });

  it('every label they match or group by is carried by the series they use', () => {
    const wrong: string[] = [];
    const withoutSamples = new Set<string>();
    for (const { where, expr } of [...dashboardExprs, ...alertExprs]) {
      const refs = promqlRefs(expr);
      const known = new Set(SCRAPE_LABELS);
      let checkable = true;
      for (const m of refs.metrics) {
        const family = families.get(familyOf(m.name, families) ?? '');
        if (!family) continue; // `up`, or reported by the test above
        if (family.samples === 0) {
          withoutSamples.add(familyOf(m.name, families)!);
          checkable = false;
        }
        for (const l of family.labels) known.add(l);
      }
      if (!checkable) continue;
      const used = [...refs.metrics.flatMap((m) => m.labels), ...refs.groupingLabels];
      for (const l of used) if (!known.has(l)) wrong.push(`${where}: label ${l}`);
    }
    expect(wrong).toEqual([]);
    // nothing went unchecked but what this run cannot produce
    expect([...withoutSamples].filter((f) => !NO_SAMPLES_HERE.has(f))).toEqual([]);
    expect(families.get('fresh_badges_api_requests_total')?.labels).toEqual(new Set(['route', 'status']));
    expect(families.get('fresh_badges_verify_mismatches_total')?.labels).toEqual(new Set(['feature']));
  });
});

describe('docs/monitoring/alerts.yml', () => {
  it('is valid YAML in the shape of a Prometheus rule file', async () => {
    await prettier.format(alertsText, { parser: 'yaml' }); // throws on anything that is not YAML
    expect(Object.keys(alerts)).toEqual(['groups']);
    for (const g of alerts.groups) {
      expect(Object.keys(g).sort()).toEqual(['name', 'rules']);
      for (const r of g.rules) {
        expect(Object.keys(r).every((k) => ['alert', 'expr', 'for', 'labels', 'annotations'].includes(k))).toBe(true);
        expect(r.alert).toMatch(/^[A-Za-z_][A-Za-z0-9_]*$/);
        expect(typeof r.expr).toBe('string');
        if (r.for !== undefined) expect(r.for).toMatch(/^\d+[smhd]$/);
        expect(Object.keys(r.annotations as object).sort()).toEqual(['description', 'runbook_url', 'summary']);
        expect((r.labels as Record<string, string>).severity).toMatch(/^(critical|warning)$/);
      }
    }
    expect(new Set(alerts.groups.map((g) => g.name)).size).toBe(alerts.groups.length);
  });

  it("links every alert to its own section of docs/operations.md's runbook", () => {
    const anchors = new Set(
      read('docs/operations.md')
        .split('\n')
        .filter((l) => /^#{2,4} /.test(l))
        .map((l) =>
          l
            .replace(/^#+ /, '')
            .toLowerCase()
            .replace(/[^a-z0-9 _-]/g, '')
            .replace(/ /g, '-'),
        ),
    );
    for (const g of alerts.groups)
      for (const r of g.rules) {
        const annotations = r.annotations as Record<string, string>;
        expect(annotations.runbook_url).toBe(`docs/operations.md#${String(r.alert).toLowerCase()}`);
        expect(anchors, `no section for ${String(r.alert)}`).toContain(String(r.alert).toLowerCase());
      }
  });

  // A store emptied for a rebuild has no caught-up time until its refill is done: the lag gauge
  // must not keep its last fresh value, or the staleness alert never fires while reads are stale.
  it('the lag gauge reads +Inf while a partition has no epoch, as reads see it', async () => {
    const epochs = await Promise.all(c.keys.partitions.map((p) => c.redis.get(p.epoch)));
    const gauge = async () =>
      /^fresh_badges_drain_lag_seconds (\S+)$/m.exec(await (await fetch(workerMetrics)).text())?.[1];
    try {
      await c.redis.del(c.keys.partitions[0]!.epoch);
      await eventually(async () => (await gauge()) === '+Inf', 20_000, 'the lag gauge to read +Inf');
    } finally {
      for (const [i, p] of c.keys.partitions.entries()) if (epochs[i] !== null) await c.redis.set(p.epoch, epochs[i]!);
    }
    await eventually(async () => Number(await gauge()) < 60, 20_000, 'the lag gauge back to a number');
  });
});
