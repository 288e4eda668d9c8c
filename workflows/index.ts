// Every workflow the worker runs; one per file. Deterministic code only (Temporal sandbox):
// side effects live in activities/.
export { drainWorkflow, stopDrainSignal, drainStatusQuery, AUTO_BACKFILL_ID } from './drain';
export type { DrainWorkflowInput, DrainRunSummary } from './drain';
export { skuRebuildWorkflow, skuRebuildWorkflowId } from './sku-rebuild';
export { compactionWorkflow } from './compaction';
export type { CompactionInput } from './compaction';
export { backfillWorkflow, backfillProgressQuery } from './backfill';
export type { BackfillInput, BackfillProgress } from './backfill';
export { replayWorkflow, replayProgressQuery } from './replay';
export type { ReplayInput, ReplayProgress } from './replay';
export { verifyWorkflow, retryDeadLettersWorkflow, discardDeadLettersWorkflow } from './operations';
export { sampledVerifyWorkflow } from './sampled-verify';
export type { SampledVerifyInput } from './sampled-verify';
export { landingWorkflow, exportWorkflow } from './export';
export { reshardWorkflow, reshardProgressQuery, RESHARD_WORKFLOW_ID } from './reshard';
export type { ReshardInput, ReshardProgress } from './reshard';
export { captureWorkflow, stopCaptureSignal, captureStatusQuery } from './capture';
export type { CaptureWorkflowInput, CaptureRunSummary } from './capture';
