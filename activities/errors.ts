/**
 * Which failures heal by retrying and which never will. Temporal retries activities with backoff;
 * a failure that retrying cannot fix (a missing table, bad credentials, a wrong database name)
 * is raised as non-retryable so the workflow fails fast and the Web UI shows why.
 */
import { ApplicationFailure } from '@temporalio/common';
import { ConfigurationError } from '../config';

// SQLSTATE classes: 42 syntax error or access rule violation (undefined table/column, no
// privilege), 28 invalid authorization, 3D invalid catalog (no such database), 3F invalid schema.
const PERMANENT_SQLSTATE = /^(42|28|3D|3F)/;

export function isPermanent(err: unknown): boolean {
  if (err instanceof ConfigurationError) return true;
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && PERMANENT_SQLSTATE.test(code);
}

/** Re-throws `err`, marked non-retryable when it is permanent. */
export function rethrowClassified(err: unknown, context: string): never {
  if (err instanceof ApplicationFailure) throw err;
  const message = `${context}: ${(err as Error)?.message ?? String(err)}`;
  if (isPermanent(err)) throw ApplicationFailure.nonRetryable(message, 'ConfigurationError');
  throw err;
}
