/**
 * What activities report as they work. The worker implements it with Prometheus
 * (worker/metrics.ts); tests hand in recorders. Activities know only this interface.
 */
export interface DrainMetrics {
  batch(rows: number, seconds: number, applySeconds: number): void;
  freshness(sourceTimesMs: number[], visibleAtMs: number): void;
  deadLetters(n: number): void;
  /** The store was found behind (re-delivered or rebuilt) or ahead (rebuilt) of the cursor. */
  divergence(kind: 'behind' | 'behind-rebuild' | 'ahead' | 'truncate'): void;
  /** A sampled verify run: what it found (by feature) and how many repairs it made. */
  verified?(mismatchesByFeature: Record<string, number>, repairs: number, unjudged?: number): void;
}
