/**
 * OpenTelemetry traces, received by a real OTLP/HTTP endpoint (test/support/otlp-collector.ts):
 * every activity is a span (Temporal's interceptor), and the changes of one outbox transaction
 * form one trace, from the capture's write (with CAPTURE_MODE=logical) to each drain batch that
 * applied them to Redis.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drainWorkflow, stopDrainSignal } from '../../workflows';
import { drainShards } from '../../outbox/shards';
import { changeTraceOf } from '../../tracing/change-trace';
import { startTracing, type Tracing } from '../../tracing/provider';
import { eventually, resetState, sharedTestServer, startWorker, temporalClient, testClients } from '../support/env';
import { LOGICAL_RUN } from '../support/logical-run';
import { startOtlpCollector, type ReceivedSpan } from '../support/otlp-collector';
import { seedMinimal } from '../support/source';

const taskQueue = `tracing-${process.pid}`;
const c = testClients({ TEMPORAL_TASK_QUEUE: taskQueue });
const { address, bundlePath } = sharedTestServer();
let collector: Awaited<ReturnType<typeof startOtlpCollector>>;
let tracing: Tracing;
let worker: Awaited<ReturnType<typeof startWorker>>;
let temporal: Awaited<ReturnType<typeof temporalClient>>;

beforeAll(async () => {
  collector = await startOtlpCollector();
  // Before the capture of the logical run starts (resetState): its writes are traced too.
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = collector.url;
  process.env.OTEL_BSP_SCHEDULE_DELAY = '100';
  tracing = startTracing('fresh-badges-test');
  await resetState(c);
  worker = await startWorker(c, address, bundlePath, taskQueue, { activityInterceptors: tracing.activityInterceptors });
  temporal = await temporalClient(address);
});
afterAll(async () => {
  await worker?.stop();
  await temporal?.close();
  await c.close();
  await collector?.close();
  // not for the files after this one (one process), nor their child processes: the collector's
  // port may next be another run's collector (npm test runs the logical run beside the default run)
  delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  delete process.env.OTEL_BSP_SCHEDULE_DELAY;
});

const named = (name: string) => collector.spans.filter((s) => s.name === name);

describe('tracing', () => {
  it('one trace per outbox transaction: its capture (logical) and the drain batch that applied it, linked to the activity', async () => {
    // a chain per drain shard (TEST_DRAIN_SHARDS), as the schedules start them
    const shards = c.config.DRAIN_SHARDS;
    const handles = await Promise.all(
      drainShards(shards).map((s) =>
        temporal.client.workflow.start(drainWorkflow, {
          taskQueue,
          workflowId: `drain-tracing-${s.index}of${shards}-${Date.now()}`,
          args: [
            {
              intervalMs: 60_000,
              idleWaitMs: 200,
              ...(shards > 1 ? { shard: { index: s.index, count: shards } } : {}),
            },
          ],
        }),
      ),
    );
    await seedMinimal(c.pool);
    await c.pool.query(`update shop.inventory set reserved = reserved + 1 where sku_id = 'S1' and fc_id = 'F1'`);
    // the outbox transaction that holds the inventory change
    const txid = await eventually(
      async () =>
        (
          await c.pool.query<{ txid: string }>(
            `select txid::text from pipeline.outbox where tbl = 'inventory' and op = 'U' order by id desc limit 1`,
          )
        ).rows[0]?.txid,
      15_000,
      'the change in the outbox',
    );
    const trace = changeTraceOf(txid);
    const apply = await eventually(
      async () => {
        await tracing.flush();
        return named('drain.apply').find((s) => s.traceId === trace.traceId);
      },
      15_000,
      'the drain.apply span of the change trace',
    );
    expect(apply.parentSpanId).toBe(trace.spanId);
    expect(apply.attributes).toMatchObject({ 'fresh_badges.outbox_txid': txid });
    expect(Number(apply.attributes['fresh_badges.rows'])).toBeGreaterThan(0);
    // linked to the activity span that applied it (Temporal's interceptor; exported when the
    // activity, which drains for its budget, ends)
    expect(apply.links.length).toBe(1);
    const activity = await eventually(
      async () => {
        await tracing.flush();
        return collector.spans.find((s: ReceivedSpan) => s.spanId === apply.links[0]!.spanId);
      },
      20_000,
      'the activity span the apply links to',
    );
    expect(activity.name).toBe('RunActivity:drainBatch');

    if (LOGICAL_RUN) {
      // the capture's write is the trace's root
      const write = named('capture.write').find((s) => s.traceId === trace.traceId);
      expect(write).toBeDefined();
      expect(write!.spanId).toBe(trace.spanId);
      expect(write!.parentSpanId).toBeUndefined();
      expect(write!.attributes).toMatchObject({ 'fresh_badges.outbox_txid': txid });
    }
    for (const handle of handles) {
      await handle.signal(stopDrainSignal);
      await handle.result();
    }
  });
});
