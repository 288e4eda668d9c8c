/**
 * The drain and capture chains end on `stop` (`ops pause`). The signal cancels the running
 * activity, which commits what it did and returns normally (WAIT_CANCELLATION_COMPLETED), so the
 * loop goes on to its continue-as-new check: a run continued there would start with its stop flag
 * unset and the chain would never end, while `ops pause` reports it stopped. So a chain told to
 * stop never continues as new; it ends, as the loop's condition says.
 *
 * Histories recorded before this rule continued as new even then (closed runs, replayed by a
 * query, a reset or the history tests): `patchId` keeps them replaying as they were. The marker is
 * recorded only when a stopped run declines the suggestion, so runs that never got the signal
 * keep their command sequence.
 */
import { ActivityFailure, isCancellation, log, patched, workflowInfo } from '@temporalio/workflow';

/** Whether the run continues as new here: the server suggests it and the chain was not told to stop. */
export function continueAsNewNow(stop: boolean, patchId: string): boolean {
  return workflowInfo().continueAsNewSuggested && !(stop && patched(patchId));
}

/**
 * Whether an error of the chain's activity ends a stopped chain (the loop breaks, the lease is
 * released, the run ends stopped) instead of failing the run. A cancellation does; so does any
 * activity failure once the stop was asked for: Temporal does not retry an activity whose
 * cancellation was requested, so a worker killed or a last commit failing then reached the run as
 * a timeout or a failure, the run failed with its lease kept, and an `ops resume` within the
 * lease's TTL started a run that found it held (nothing ran until the next schedule fire).
 * `patchId` keeps runs recorded before this failing as they did.
 */
export function stoppedBy(err: unknown, stop: boolean, patchId: string): boolean {
  if (!stop) return false;
  if (isCancellation(err)) return true;
  if (!(err instanceof ActivityFailure && patched(patchId))) return false;
  log.warn('the activity in flight failed after the stop; the run ends stopped', { error: err.message });
  return true;
}
