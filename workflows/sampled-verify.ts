/**
 * Continuous verification, fired by the schedule `fresh-badges-verify` (every 5 minutes by
 * default): one activity that checks a random sample of SKUs plus every FC, region and daily load
 * against the source, and repairs what differs through the outbox (activities/verify). The full
 * check stays an operator command (`ops verify`, workflows/operations.ts).
 */
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { sampledVerifyActivity } from './activity-options';

const { verifyAndRepair } = proxyActivities<Activities>(sampledVerifyActivity);

export interface SampledVerifyInput {
  /** SKUs checked per run (VERIFY_SAMPLE_SKUS). */
  sample: number;
  /** Of those, SKUs whose badge is compared in every region. */
  badgeSkus?: number;
}

export async function sampledVerifyWorkflow(input: SampledVerifyInput) {
  return verifyAndRepair({ sample: input.sample, badgeSkus: input.badgeSkus });
}
