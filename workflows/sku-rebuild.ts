/**
 * Rebuilds a reactivated SKU's stock in the online store after its tombstone expired. Started by
 * the drain with id `sku-rebuild-<sku>` (visible in the Web UI), retried through failures, and
 * safe to run twice: it re-emits the SKU's current rows, which the versioned apply makes idempotent.
 */
import { proxyActivities, setCurrentDetails } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { skuRebuildActivity } from './activity-options';
import { count } from './run-details';

const { refreshSku } = proxyActivities<Activities>(skuRebuildActivity);

export const skuRebuildWorkflowId = (sku: string) => `sku-rebuild-${sku}`;

export async function skuRebuildWorkflow(input: { sku: string }): Promise<{ rows: number }> {
  setCurrentDetails(`re-reading SKU ${input.sku}'s current rows from the source`);
  const r = await refreshSku({ sku: input.sku });
  setCurrentDetails(`done · ${count(r.rows)} rows of SKU ${input.sku} written again`);
  return r;
}
