/** Drain metrics for tests that only want to know which divergences the drain reported. */
import type { DrainMetrics } from '../../activities/metrics';

export function recordingDivergences(): { metrics: DrainMetrics; divergences: string[] } {
  const divergences: string[] = [];
  const metrics: DrainMetrics = {
    batch: () => undefined,
    freshness: () => undefined,
    deadLetters: () => undefined,
    divergence: (k) => void divergences.push(k),
  };
  return { metrics, divergences };
}
