// Every workflow the worker runs; one per file. Deterministic code only (Temporal sandbox):
// side effects live in activities/.
export { drainWorkflow } from './drain';
export type { DrainWorkflowInput, DrainRunSummary } from './drain';
export { skuRebuildWorkflow, skuRebuildWorkflowId } from './sku-rebuild';
export { compactionWorkflow } from './compaction';
export type { CompactionInput } from './compaction';
