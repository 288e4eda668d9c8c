/**
 * One-activity operator workflows, so every action an operator starts is visible, retried and
 * recorded in Temporal: verify (`verify-<time>`), dead-letter retry (`dead-letters-retry-<time>`)
 * and discard (`dead-letters-discard-<time>`).
 */
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { VerifyOptions } from '../reconcile/verify';
import type { DiscardInput } from '../activities/dead-letters/discard';
import { operatorActivity } from './activity-options';

const acts = proxyActivities<Activities>(operatorActivity);

export async function verifyWorkflow(input: VerifyOptions = {}) {
  return acts.verifyStore(input);
}

export async function retryDeadLettersWorkflow(input: { ids?: string[] } = {}) {
  return acts.retryDeadLetters(input);
}

/** Marks dead letters discarded (kept for audit); they stop counting as waiting and are never retried. */
export async function discardDeadLettersWorkflow(input: DiscardInput) {
  return acts.discardDeadLetters(input);
}
