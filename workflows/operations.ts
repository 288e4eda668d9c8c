/**
 * One-activity operator workflows, so every action an operator starts is visible, retried and
 * recorded in Temporal: verify (`verify-<time>`) and dead-letter retry (`dead-letters-retry-<time>`).
 */
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { VerifyOptions } from '../reconcile/verify';

const acts = proxyActivities<Activities>({
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 5, nonRetryableErrorTypes: ['ConfigurationError'] },
});

export async function verifyWorkflow(input: VerifyOptions = {}) {
  return acts.verifyStore(input);
}

export async function retryDeadLettersWorkflow(input: { ids?: string[] } = {}) {
  return acts.retryDeadLetters(input);
}
