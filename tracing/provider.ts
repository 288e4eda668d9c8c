/**
 * OpenTelemetry tracing of the worker, on when an OTLP endpoint is configured with the standard
 * variables (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; OTLP over HTTP
 * with JSON); off, and free, otherwise. OTEL_SERVICE_NAME names the process (fresh-badges-worker).
 *
 * What is traced: every activity (Temporal's activity interceptor: `RunActivity:drainBatch`, …) and,
 * inside, one trace per outbox transaction from its capture to its apply (tracing/change-trace.ts). Workflow code is not instrumented: the
 * interceptor's workflow half would change how recorded histories replay.
 */
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { OpenTelemetryActivityInboundInterceptor } from '@temporalio/interceptors-opentelemetry';
import { changeTraceIds, setChangeTracing } from './change-trace';

export interface Tracing {
  /** Temporal's activity interceptor, to add to the worker's (none when tracing is off). */
  activityInterceptors: ActivityInterceptorsFactory[];
  /** Exports what is buffered (a worker stopping; the process may start another). */
  flush(): Promise<void>;
}

const OFF: Tracing = { activityInterceptors: [], flush: async () => undefined };
/** One provider per process: a worker started again (npm start after a fault) reuses it. */
let started: Tracing | null = null;

/** Whether the environment asks for traces. */
export const tracingConfigured = (env: NodeJS.ProcessEnv = process.env): boolean =>
  !!(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) && env.OTEL_SDK_DISABLED !== 'true';

/** Starts the process's tracer provider (once) when the environment asks for traces. */
export function startTracing(defaultServiceName = 'fresh-badges-worker', env = process.env): Tracing {
  if (!tracingConfigured(env)) return OFF;
  if (started) return started;
  const provider = new BasicTracerProvider({
    resource: new Resource({ 'service.name': env.OTEL_SERVICE_NAME || defaultServiceName }),
    idGenerator: changeTraceIds,
    // The exporter reads the endpoint, headers and timeout from the standard OTEL_ variables.
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  trace.setGlobalTracerProvider(provider);
  setChangeTracing(true);
  started = {
    activityInterceptors: [(ctx) => ({ inbound: new OpenTelemetryActivityInboundInterceptor(ctx) })],
    flush: () => provider.forceFlush(),
  };
  return started;
}
