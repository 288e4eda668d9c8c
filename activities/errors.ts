/**
 * Which failures heal by retrying and which never will. Temporal retries activities with backoff;
 * a failure that retrying cannot fix (a missing table, bad credentials, a wrong database name)
 * is raised as non-retryable so the workflow fails fast and the Web UI shows why.
 *
 * One activity interceptor does this for every activity (the worker registers it, and so does
 * the local runner benchmarks and tests use), so activities just throw.
 */
import { ApplicationFailure } from '@temporalio/common';
import type {
  ActivityExecuteInput,
  ActivityInboundCallsInterceptor,
  ActivityInterceptors,
  Next,
} from '@temporalio/worker';
import type { Context } from '@temporalio/activity';
import { ConfigurationError } from '../config';
import { CONFIGURATION_ERROR_TYPE } from '../config/error-types';

// SQLSTATE classes: 42 syntax error or access rule violation (undefined table/column, no
// privilege), 28 invalid authorization, 3D invalid catalog (no such database), 3F invalid schema.
const PERMANENT_SQLSTATE = /^(42|28|3D|3F)/;

export function isPermanent(err: unknown): boolean {
  if (err instanceof ConfigurationError) return true;
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && PERMANENT_SQLSTATE.test(code);
}

/** `err` as it should leave an activity: permanent failures become non-retryable, named after the activity. */
export function classified(err: unknown, activityType: string): unknown {
  if (err instanceof ApplicationFailure || !isPermanent(err)) return err;
  return ApplicationFailure.nonRetryable(
    `${activityType}: ${(err as Error)?.message ?? String(err)}`,
    CONFIGURATION_ERROR_TYPE,
  );
}

class ClassifyErrors implements ActivityInboundCallsInterceptor {
  constructor(private readonly ctx: Context) {}

  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    try {
      return await next(input);
    } catch (err) {
      throw classified(err, this.ctx.info.activityType);
    }
  }
}

/** The activity interceptors of every worker (and of the local runner). */
export const activityInterceptors = (ctx: Context): ActivityInterceptors => ({ inbound: new ClassifyErrors(ctx) });
