/** Builds a Temporal worker with the pipeline's activities bound to real clients. */
import { NativeConnection, Worker, type ActivityInterceptorsFactory } from '@temporalio/worker';
import { createActivities, ActivityClients } from '../activities';
import { activityInterceptors } from '../activities/errors';
import { workflowSource } from './workflow-bundle';

export interface WorkerOptions extends ActivityClients {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  bundlePath?: string;
  /** Run outside the error classification (tracing/provider.ts: an activity span around it all). */
  extraActivityInterceptors?: ActivityInterceptorsFactory[];
}

/** Worker states from which it no longer takes work (a shutdown was asked for, or it ended). */
const WINDING_DOWN = new Set(['STOPPING', 'DRAINING', 'DRAINED', 'STOPPED', 'FAILED']);

export async function createWorker(opts: WorkerOptions): Promise<Worker> {
  // The SDK lets in-flight activities run out their time at a shutdown (up to shutdownGraceTime)
  // and tells them nothing; drain and capture runs last a budget of seconds. So its state is
  // watched, and as soon as a shutdown begins the drain activity ends after its batch in flight and
  // the capture activity after writing what it read.
  const stopping = new AbortController();
  const worker = await Worker.create({
    connection: opts.connection,
    namespace: opts.namespace,
    taskQueue: opts.taskQueue,
    activities: createActivities({
      pool: opts.pool,
      sourcePool: opts.sourcePool,
      redis: opts.redis,
      config: opts.config,
      metrics: opts.metrics,
      temporal: opts.temporal,
      stopping: stopping.signal,
    }),
    ...workflowSource(opts.bundlePath),
    // Classifies every activity's failures (retryable or not) in one place: activities/errors.ts.
    interceptors: { activity: [...(opts.extraActivityInterceptors ?? []), activityInterceptors] },
    // Activities are short and I/O-bound; a handful in flight is plenty on two cores.
    maxConcurrentActivityTaskExecutions: 20,
    // The drain's and capture's activities run for seconds and learn of `ops pause` (a
    // cancellation) only from a heartbeat's reply: heartbeats reach the server at most this far
    // apart, so a pause takes effect within about a second.
    maxHeartbeatThrottleInterval: '500 milliseconds',
    shutdownGraceTime: '10 seconds',
  });
  const watch = setInterval(() => {
    if (!WINDING_DOWN.has(worker.getState())) return;
    stopping.abort();
    clearInterval(watch);
  }, 100);
  watch.unref();
  return worker;
}
