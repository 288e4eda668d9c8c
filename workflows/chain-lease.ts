/**
 * The drain and capture chains take a lease in their first run. A run the chain continued into
 * holds it already (same workflow id, so the same owner), and every activity checks it anyway (a run
 * that lost it ends `lease-lost`), so it goes straight to work: one activity round trip sooner. That
 * round trip was a stall in freshness each time a chain continued as new. Histories recorded before
 * took the lease in every run: `patchId` keeps them replaying as they were.
 */
import { patched, workflowInfo } from '@temporalio/workflow';

export function continuedRunKeepsLease(patchId: string): boolean {
  return !!workflowInfo().continuedFromExecutionRunId && patched(patchId);
}
