/**
 * "The outbox has new rows", within one process: capture from the WAL says so after each outbox
 * write commits, and a drain that found nothing new wakes then instead of at its next poll
 * (DRAIN_POLL_MS). The default deployment runs capture and the drain in one worker, so an idle
 * pipeline shows a change within milliseconds of its capture rather than half a poll later.
 *
 * Only a hint: nothing depends on it for correctness. A drain in another process (or a write by
 * the trigger capture, inside a source transaction) is still found by the poll, and a wake-up
 * that finds nothing new is an idle pass like any other.
 */

let writes = 0;
const waiting = new Set<() => void>();

/** How many writes were announced so far: taken before a pass, so a write during it is not missed. */
export function outboxWrites(): number {
  return writes;
}

/** Capture: rows were committed into the outbox. */
export function announceOutboxWrite(): void {
  writes++;
  for (const wake of [...waiting]) wake();
}

/**
 * Waits up to `ms`, or until a write is announced after `seen` (outboxWrites() before the pass
 * that found nothing: a write that landed while it ran ends the wait at once). Resolves true when
 * woken by a write.
 */
export function waitForOutboxWrite(ms: number, seen: number): Promise<boolean> {
  if (writes !== seen) return Promise.resolve(true);
  return new Promise((resolve) => {
    const wake = () => {
      clearTimeout(timer);
      waiting.delete(wake);
      resolve(true);
    };
    const timer = setTimeout(() => {
      waiting.delete(wake);
      resolve(false);
    }, ms);
    waiting.add(wake);
  });
}
