/**
 * What does not work yet under CAPTURE_MODE=logical (docs/capture.md, "Not done yet"): verify
 * reads the shop tables through the pipeline's own database and compares against its snapshots,
 * which says nothing about a source captured from the WAL. It refuses, with this error, instead of
 * comparing against (and repairing from) the wrong database.
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
