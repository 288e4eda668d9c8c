/** The configuration reaches the capture chains through their schedules' arguments. */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config';
import { captureScheduleOptions } from '../../scripts/lib/schedules';
import type { CaptureWorkflowInput } from '../../workflows/capture';

describe('capture schedule', () => {
  it('starts each run with the configured activity budget, interval and run length', () => {
    const config = loadConfig({
      CAPTURE_MODE: 'logical',
      CAPTURE_ACTIVITY_BUDGET_MS: '4321',
      CAPTURE_INTERVAL_MS: '30000',
    });
    const input = captureScheduleOptions(config, 'inventory').action.args![0] as CaptureWorkflowInput;
    expect(input).toMatchObject({ source: 'inventory', activityBudgetMs: 4321, intervalMs: 30_000 });
    expect(input.runMs).toBe(Math.max(config.CHAIN_RUN_MS, 30_000));
  });

  it('streams a minute per activity by default (each hand-over between activities waits for Temporal)', () => {
    const input = captureScheduleOptions(loadConfig({ CAPTURE_MODE: 'logical' }), 'orders').action
      .args![0] as CaptureWorkflowInput;
    expect(input.activityBudgetMs).toBe(60_000);
  });
});
