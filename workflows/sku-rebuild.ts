/**
 * Rebuilds a reactivated SKU's stock in the online store after its tombstone expired. Started by
 * the drain with id `sku-rebuild-<sku>` (visible in the Web UI), retried through failures, and
 * safe to run twice: it re-emits the SKU's current rows, which the versioned apply makes idempotent,
 * and clears the SKU's request only once the drain has applied them.
 */
import { proxyActivities, setCurrentDetails } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { skuRebuildActivity, skuRebuildAppliedActivity } from './activity-options';
import { count } from './run-details';

const { refreshSku } = proxyActivities<Activities>(skuRebuildActivity);
const { finishSkuRebuild } = proxyActivities<Activities>(skuRebuildAppliedActivity);

export const skuRebuildWorkflowId = (sku: string) => `sku-rebuild-${sku}`;

export async function skuRebuildWorkflow(input: { sku: string }): Promise<{ rows: number }> {
  setCurrentDetails(`re-reading SKU ${input.sku}'s current rows from the source`);
  const r = await refreshSku({ sku: input.sku });
  // the request (and so the reads' `unknown`) stays until the drain has applied what was re-emitted
  setCurrentDetails(`${count(r.rows)} rows of SKU ${input.sku} written again · waiting for the drain to apply them`);
  await finishSkuRebuild({ sku: input.sku, snapshot: r.snapshot });
  setCurrentDetails(`done · ${count(r.rows)} rows of SKU ${input.sku} written again and applied`);
  return { rows: r.rows };
}
