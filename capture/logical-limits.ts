/**
 * What does not work yet under CAPTURE_MODE=logical (docs/capture.md, "Not done yet"): a backfill
 * and verify read the shop tables through the pipeline's own database and compare against its
 * snapshots, which says nothing about a source captured from the WAL. They refuse, with this error,
 * instead of filling or repairing the store from the wrong database: the store then stays
 * incomplete and its reads say stale, never a false fresh answer.
 */
import { ApplicationFailure } from '@temporalio/activity';
import type { Config } from '../config';

export const NOT_UNDER_LOGICAL_CAPTURE = 'NotUnderLogicalCapture';

export function refuseUnderLogicalCapture(config: Pick<Config, 'CAPTURE_MODE'>, what: string): void {
  if (config.CAPTURE_MODE !== 'logical') return;
  throw ApplicationFailure.nonRetryable(
    `${what} is not available yet with CAPTURE_MODE=logical (docs/capture.md): run it with CAPTURE_MODE=trigger, where the sources share the pipeline's database`,
    NOT_UNDER_LOGICAL_CAPTURE,
  );
}
