import { describe, expect, it } from 'vitest';
import { promqlRefs } from '../support/promql';

describe('promqlRefs (what the monitoring test checks against /metrics)', () => {
  it('finds metric names and their matchers, not functions, keywords, numbers, strings or durations', () => {
    const refs = promqlRefs(
      'histogram_quantile(0.99, sum by (le, route) (rate(a_seconds_bucket{route=~"badges|badge"}[5m]))) > 2.5e-2 and on(job) up{job="x y"} == bool 0',
    );
    expect(refs.metrics).toEqual([
      { name: 'a_seconds_bucket', labels: ['route'] },
      { name: 'up', labels: ['job'] },
    ]);
    expect(refs.groupingLabels).toEqual(['le', 'route', 'job']);
  });

  it("takes Grafana's range variables and aggregations written after their argument", () => {
    expect(promqlRefs('sum(increase(b_total[$__rate_interval])) by (feature) / c').metrics.map((m) => m.name)).toEqual([
      'b_total',
      'c',
    ]);
  });
});
