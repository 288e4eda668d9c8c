/**
 * Runs the pipeline's activities outside a worker (benchmarks, tests, tools), each call in
 * Temporal's MockActivityEnvironment with the worker's own interceptors: the code runs exactly as
 * under a worker (heartbeats, cancellation signal, logger, error classification), so production
 * code needs no "not in an activity" fallbacks.
 */
import { DefaultLogger } from '@temporalio/worker';
import { MockActivityEnvironment } from '@temporalio/testing';
import { activityInterceptors } from '../../activities/errors';

type AnyActivity = (...args: any[]) => Promise<unknown>; // eslint-disable-line @typescript-eslint/no-explicit-any

const quiet = new DefaultLogger('WARN');

/** The same activities, each call run in an activity context named after it. */
export function localActivities<T extends Record<string, AnyActivity>>(activities: T): T {
  const wrapped: Record<string, AnyActivity> = {};
  for (const [name, fn] of Object.entries(activities)) {
    wrapped[name] = (...args) =>
      new MockActivityEnvironment({ activityType: name }, { interceptors: [activityInterceptors], logger: quiet }).run(
        fn,
        ...args,
      );
  }
  return wrapped as T;
}
