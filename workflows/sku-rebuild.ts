/**
 * Rebuilds a reactivated SKU's stock in the online store after its tombstone expired. Started by
 * the drain with id `sku-rebuild-<sku>` (visible in the Web UI), retried through failures, and
 * safe to run twice: it re-emits the SKU's current rows, which the versioned apply makes idempotent.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { skuRebuildActivity } from './activity-options';

const { refreshSku } = proxyActivities<Activities>(skuRebuildActivity);

export const skuRebuildWorkflowId = (sku: string) => `sku-rebuild-${sku}`;

export async function skuRebuildWorkflow(input: { sku: string }): Promise<{ rows: number }> {
  return refreshSku({ sku: input.sku });
}
