/**
 * Rebuilds a reactivated SKU's stock in the online store after its tombstone expired. Started by
 * the drain with id `sku-rebuild-<sku>` (visible in the Web UI), retried through failures, and
 * safe to run twice: it re-emits the SKU's current rows, which the versioned apply makes idempotent.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';

const { refreshSku } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '500 milliseconds', backoffCoefficient: 2, maximumInterval: '30 seconds', nonRetryableErrorTypes: ['ConfigurationError'] },
});

export const skuRebuildWorkflowId = (sku: string) => `sku-rebuild-${sku}`;

export async function skuRebuildWorkflow(input: { sku: string }): Promise<{ rows: number }> {
  return refreshSku({ sku: input.sku });
}
