/**
 * One trace per outbox transaction, from its capture to its apply in Redis, with nothing stored:
 * the trace id and the root span id are derived from the outbox transaction's id (txid). The
 * capture writes a batch of source transactions as one outbox transaction and records it as the
 * root span `capture.write`; each drain batch that applies rows of that transaction records a
 * `drain.apply` child span in the same trace. (With the trigger capture the outbox transaction is
 * the source transaction itself and has no capture span: its `drain.apply` spans name a parent no
 * process exported.)
 *
 * Off (and free: no hashing) until tracing/provider.ts turns it on.
 */
import { createHash } from 'node:crypto';
import { context, ROOT_CONTEXT, trace, TraceFlags, type Attributes, type SpanContext } from '@opentelemetry/api';
import { RandomIdGenerator, type IdGenerator } from '@opentelemetry/sdk-trace-base';

let enabled = false;
export const setChangeTracing = (on: boolean) => {
  enabled = on;
};
export const changeTracingOn = () => enabled;

/** The trace of the changes outbox transaction `txid` holds, and its root span's id. */
export function changeTraceOf(outboxTxid: string): SpanContext {
  const h = createHash('sha256').update(`fresh-badges/outbox-transaction/${outboxTxid}`).digest('hex');
  return { traceId: h.slice(0, 32), spanId: h.slice(32, 48), traceFlags: TraceFlags.SAMPLED, isRemote: true };
}

/**
 * The provider's id generator: random ids, except for the one span being started as a change
 * trace's root (startSpan is synchronous, so the forced ids cannot reach another span).
 */
export class ChangeTraceIds implements IdGenerator {
  private readonly random = new RandomIdGenerator();
  forced: SpanContext | null = null;
  generateTraceId(): string {
    return this.forced?.traceId ?? this.random.generateTraceId();
  }
  generateSpanId(): string {
    return this.forced?.spanId ?? this.random.generateSpanId();
  }
}

export const changeTraceIds = new ChangeTraceIds();
const tracer = () => trace.getTracer('fresh-badges');

/** Records the capture's write of outbox transaction `txid` (started at `startMs`) as its trace's root. */
export function recordCaptureWrite(outboxTxid: string, startMs: number, attributes: Attributes): void {
  if (!enabled) return;
  const link = trace.getSpanContext(context.active());
  changeTraceIds.forced = changeTraceOf(outboxTxid);
  try {
    tracer()
      .startSpan(
        'capture.write',
        { startTime: startMs, root: true, attributes, links: link ? [{ context: link }] : [] },
        ROOT_CONTEXT,
      )
      .end();
  } finally {
    changeTraceIds.forced = null;
  }
}

/** Records a drain batch's apply of the rows of outbox transaction `txid` in that transaction's trace. */
export function recordDrainApply(outboxTxid: string, startMs: number, attributes: Attributes): void {
  if (!enabled) return;
  const link = trace.getSpanContext(context.active());
  const parent = trace.setSpanContext(ROOT_CONTEXT, changeTraceOf(outboxTxid));
  tracer()
    .startSpan('drain.apply', { startTime: startMs, attributes, links: link ? [{ context: link }] : [] }, parent)
    .end();
}
