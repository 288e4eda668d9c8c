/** Follows a running workflow's `progress` query with a progress bar (rate and ETA), until it ends. */
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import cliProgress from 'cli-progress';

export interface ProgressFrame {
  label: string;
  value: number;
  /** The expected total; not above `value` while running: the estimate was short, the total unknown. */
  total: number;
  /** Rows per second so far. */
  rate: number;
  done?: boolean;
}

const BAR_WIDTH = 30;

/**
 * One frame for a person. An estimate at or below the rows already done says nothing about what
 * is left (a table never analysed was estimated at 0 rows, and the bar said 100% and ETA 0s from
 * its first frame): the frame then says "estimating" instead of a percentage, a total and an ETA.
 */
export function progressLine(f: ProgressFrame): string {
  const known = f.done || f.total > f.value;
  if (!known)
    return `${f.label} |${'░'.repeat(BAR_WIDTH)}| estimating | ${f.value} rows so far | ${f.rate} rows/s | ETA estimating`;
  const total = Math.max(f.total, f.value);
  const share = total === 0 ? 1 : f.value / total;
  const filled = Math.round(share * BAR_WIDTH);
  const eta = f.done ? 0 : f.rate > 0 ? Math.ceil((total - f.value) / f.rate) : null;
  return `${f.label} |${'█'.repeat(filled)}${'░'.repeat(BAR_WIDTH - filled)}| ${Math.floor(share * 100)}% | ${f.value}/${total} rows | ${f.rate} rows/s | ETA ${eta === null ? '-' : formatSeconds(eta)}`;
}

function formatSeconds(s: number): string {
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export async function followProgress<P>(
  handle: WorkflowHandle,
  read: (p: P) => { value: number; total: number; label: string },
): Promise<unknown> {
  // The line is ours (progressLine): cli-progress only redraws it.
  const bar = new cliProgress.SingleBar({
    format: (_options, _params, payload: { frame: ProgressFrame }) => progressLine(payload.frame),
    hideCursor: true,
  });
  let started = false;
  const t0 = Date.now();
  const result = handle.result();
  let finished = false;
  void result.then(
    () => (finished = true),
    () => (finished = true),
  );
  let last: ProgressFrame | undefined;
  while (!finished) {
    try {
      const p = read((await handle.query('progress')) as P);
      const rate = Math.round(p.value / Math.max(0.001, (Date.now() - t0) / 1000));
      last = { ...p, rate };
      if (!started) bar.start(1, 0, { frame: last });
      started = true;
      bar.update(0, { frame: last });
    } catch {
      // not started yet, or between runs (continue-as-new): try again
    }
    await Promise.race([result.catch(() => undefined), sleep(500)]);
  }
  if (started && last) {
    // the finished run's own count (a closed workflow still answers queries), else the last seen
    const end = await handle
      .query('progress')
      .then((p) => read(p as P))
      .catch(() => last!);
    bar.update(0, { frame: { ...last, value: end.value, total: end.value, done: true } });
  }
  if (started) bar.stop();
  return result;
}
