/** The worker's Prometheus metrics (real prom-client registry): the verify counters are exported. */
import { describe, expect, it } from 'vitest';
import { createWorkerMetrics } from '../../worker/metrics';

describe('worker metrics', () => {
  it('a sampled verify run counts its mismatches by feature and its repairs', async () => {
    const m = createWorkerMetrics();
    m.drain.verified!({ available: 2, load: 1 }, 3);
    m.drain.verified!({}, 0);
    const text = await m.registry.metrics();
    expect(text).toMatch(/^fresh_badges_verify_mismatches_total\{feature="available"\} 2$/m);
    expect(text).toMatch(/^fresh_badges_verify_mismatches_total\{feature="load"\} 1$/m);
    expect(text).toMatch(/^fresh_badges_verify_mismatches_total\{feature="lifecycle"\} 0$/m);
    expect(text).toMatch(/^fresh_badges_verify_repairs_total 3$/m);
    expect(text).toMatch(/^fresh_badges_verify_runs_total 2$/m);
  });
});
