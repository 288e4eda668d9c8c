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
import { patched, workflowInfo } from '@temporalio/workflow';

/** Whether the run continues as new here: the server suggests it and the chain was not told to stop. */
export function continueAsNewNow(stop: boolean, patchId: string): boolean {
  return workflowInfo().continueAsNewSuggested && !(stop && patched(patchId));
}
