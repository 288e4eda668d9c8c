/**
 * A lower CPU priority for a whole process: the batch worker's landing and export yield to the
 * drain on a shared machine (BATCH_WORKER_NICE).
 *
 * On Linux a nice value belongs to a thread, not to the process: setpriority() on the process id
 * changes only the calling thread, and a thread created later inherits its creator's value. V8
 * starts its platform threads (garbage collection, compilation) before any of our code runs, so
 * lowering only the main thread left them, and the collections they run, at the drain's priority.
 * Every thread that exists is lowered; threads started afterwards (libuv's pool, DuckDB's, the
 * Temporal runtime's) are started from lowered threads and inherit it.
 */
import { readdirSync } from 'node:fs';
import os from 'node:os';

/** The ids of this process's threads (Linux), or [0] (this thread) where /proc has none. */
function threadIds(): number[] {
  try {
    return readdirSync('/proc/self/task').map(Number);
  } catch {
    return [0];
  }
}

/**
 * Lowers every thread of this process to at least `nice` (never raises one). Returns the threads it
 * could not change (one that ended meanwhile is not counted).
 */
export function lowerProcessPriority(nice: number): { failed: number; error?: string } {
  let failed = 0;
  let error: string | undefined;
  for (const tid of threadIds()) {
    try {
      const current = os.getPriority(tid);
      if (current < nice) os.setPriority(tid, nice);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH' || /ESRCH|no such process/i.test(String(err))) continue;
      failed++;
      error ??= (err as Error).message;
    }
  }
  return error ? { failed, error } : { failed };
}
