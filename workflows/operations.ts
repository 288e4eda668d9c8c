/**
 * One-activity operator workflows, so every action an operator starts is visible, retried and
 * recorded in Temporal: verify (`verify-<time>`) and dead-letter retry (`dead-letters-retry-<time>`).
 */
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { VerifyOptions } from '../reconcile/verify';
import { operatorActivity } from './activity-options';

const acts = proxyActivities<Activities>(operatorActivity);

export async function verifyWorkflow(input: VerifyOptions = {}) {
  return acts.verifyStore(input);
}

export async function retryDeadLettersWorkflow(input: { ids?: string[] } = {}) {
  return acts.retryDeadLetters(input);
}
