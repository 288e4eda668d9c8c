/** Follows a running workflow's `progress` query with a progress bar (rate and ETA), until it ends. */
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import cliProgress from 'cli-progress';

export async function followProgress<P>(
  handle: WorkflowHandle,
  read: (p: P) => { value: number; total: number; label: string },
): Promise<unknown> {
  const bar = new cliProgress.SingleBar(
    {
      format: '{label} |{bar}| {percentage}% | {value}/{total} rows | {rate} rows/s | ETA {eta_formatted}',
      hideCursor: true,
      etaBuffer: 20,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  const t0 = Date.now();
  const result = handle.result();
  let finished = false;
  void result.then(
    () => (finished = true),
    () => (finished = true),
  );
  while (!finished) {
    try {
      const p = read((await handle.query('progress')) as P);
      const rate = Math.round(p.value / Math.max(0.001, (Date.now() - t0) / 1000));
      if (!started) {
        bar.start(Math.max(p.total, p.value, 1), p.value, { label: p.label, rate });
        started = true;
      }
      bar.setTotal(Math.max(p.total, p.value, 1));
      bar.update(p.value, { label: p.label, rate });
    } catch {
      // not started yet, or between runs (continue-as-new): try again
    }
    await Promise.race([result.catch(() => undefined), sleep(500)]);
  }
  if (started) bar.stop();
  return result;
}
