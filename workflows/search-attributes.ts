/**
 * The search attributes every pipeline run carries, so the Web UI and `temporal workflow list`
 * can filter them: `FreshBadgesKind = "drain" AND ExecutionStatus = "Running"`,
 * `FreshBadgesShard = 2`, `FreshBadgesOutcome = "lease-lost"`.
 *
 * Kind and shard are set when a run starts (schedule action, `ops`, a parent workflow) and carried
 * across continue-as-new by the server; the outcome is upserted when a drain or capture run ends.
 * A run started without them (TEMPORAL_SEARCH_ATTRIBUTES=false, or by older code) never upserts:
 * an attribute the namespace does not know would fail the workflow task.
 *
 * Workflow-safe (no Node APIs): imported by workflows and by the scripts that register them.
 */
import {
  defineSearchAttributeKey,
  SearchAttributeType,
  type SearchAttributePair,
  type TypedSearchAttributes,
} from '@temporalio/common';
import { upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';

export const RUN_KIND = defineSearchAttributeKey('FreshBadgesKind', SearchAttributeType.KEYWORD);
export const RUN_SHARD = defineSearchAttributeKey('FreshBadgesShard', SearchAttributeType.INT);
export const RUN_OUTCOME = defineSearchAttributeKey('FreshBadgesOutcome', SearchAttributeType.KEYWORD);

/** Every key, for registration (`temporal operator search-attribute create`, the dev server's flags). */
export const SEARCH_ATTRIBUTE_KEYS = [RUN_KIND, RUN_SHARD, RUN_OUTCOME] as const;

export type RunKind =
  | 'drain'
  | 'capture'
  | 'backfill'
  | 'replay'
  | 'verify'
  | 'rebuild'
  | 'dead-letter-retry'
  | 'dead-letter-discard'
  | 'reshard'
  | 'compaction'
  | 'landing'
  | 'export';

/** The kind of a run by its workflow type (operator workflows, children started by workflows). */
const KIND_OF_TYPE: Record<string, RunKind> = {
  backfillWorkflow: 'backfill',
  captureWorkflow: 'capture',
  compactionWorkflow: 'compaction',
  drainWorkflow: 'drain',
  landingWorkflow: 'landing',
  exportWorkflow: 'export',
  verifyWorkflow: 'verify',
  sampledVerifyWorkflow: 'verify',
  retryDeadLettersWorkflow: 'dead-letter-retry',
  discardDeadLettersWorkflow: 'dead-letter-discard',
  replayWorkflow: 'replay',
  reshardWorkflow: 'reshard',
  skuRebuildWorkflow: 'rebuild',
};

export const kindOfWorkflowType = (type: string): RunKind | undefined => KIND_OF_TYPE[type];

/** The attributes a run of `kind` starts with (shard: the drain shard's index, when sharded). */
export function runTags(kind: RunKind, shard?: number): SearchAttributePair[] {
  const tags: SearchAttributePair[] = [{ key: RUN_KIND, value: kind }];
  if (shard !== undefined) tags.push({ key: RUN_SHARD, value: shard });
  return tags;
}

/** Whether this run was started with the pipeline's attributes (so the namespace has them). */
export function runIsTagged(): boolean {
  const attrs: TypedSearchAttributes | undefined = workflowInfo().typedSearchAttributes;
  return attrs?.get(RUN_KIND) !== undefined;
}

/**
 * Returns the run's summary after recording how it ended (lease-lost, stopped, retired, …) as its
 * FreshBadgesOutcome, when the run is tagged at all.
 */
export function ended<const S extends { outcome: string }>(summary: S): S {
  if (runIsTagged()) upsertSearchAttributes([{ key: RUN_OUTCOME, value: summary.outcome }]);
  return summary;
}

/** The start options' attributes of a run of this workflow type, when `enabled` (none for an unknown type). */
export function startTags(workflowType: string, enabled: boolean): { typedSearchAttributes?: SearchAttributePair[] } {
  const kind = kindOfWorkflowType(workflowType);
  return kind && enabled ? { typedSearchAttributes: runTags(kind) } : {};
}

/**
 * What a child run started by a workflow carries: the kind, when this run carries attributes
 * (otherwise the namespace may not know them).
 */
export const childTags = (workflowType: string) => startTags(workflowType, runIsTagged());
