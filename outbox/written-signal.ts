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

/**
 * A woken drain still waits this long after its idle pass: under a steady trickle of capture writes
 * (one every few milliseconds) a drain woken by each would run a pass for each, many small
 * batches instead of a few larger ones, each pass a pipeline transaction and Redis round trips.
 */
export const WAKE_AFTER_IDLE_MS = 10;

/** How many writes were announced so far. */
export function outboxWrites(): number {
  return writes;
}

/** Capture: rows were committed into the outbox. */
export function announceOutboxWrite(): void {
  writes++;
  for (const wake of [...waiting]) wake();
}

/**
 * Waits up to `ms`, or until a write is announced after `seen` (outboxWrites() when the drain's
 * batch took its target snapshot: a write since may not be in it), but at least `atLeastMs`.
 * Resolves true when woken by a write.
 */
export function waitForOutboxWrite(ms: number, seen: number, atLeastMs = 0): Promise<boolean> {
  const started = Date.now();
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout;
    const wake = () => {
      waiting.delete(wake);
      clearTimeout(timer);
      const left = Math.min(atLeastMs, ms) - (Date.now() - started);
      if (left > 0) timer = setTimeout(() => resolve(true), left);
      else resolve(true);
    };
    if (writes !== seen) return wake();
    timer = setTimeout(() => {
      waiting.delete(wake);
      resolve(false);
    }, ms);
    waiting.add(wake);
  });
}

/**
 * A drain's view of the writes: which ones its next pass may not see. A pass reads the delta up to
 * its batch's target snapshot, taken by the batch's first pass (outbox/cursor.ts); a batch left
 * open (a full chunk) keeps that target, so a write after it is unseen until a new batch begins.
 */
export class OutboxWriteWatch {
  /** Writes counted when the batch in progress took its target; -1: not known. */
  private targetSeen = -1;
  /** Whether the last pass left a batch open (null: not known, as at the start of an activity). */
  private batchOpen: boolean | null = null;

  /**
   * `seen`: the writes counted no later than this pass's BEGIN was sent (its snapshot is taken
   * after); a pass whose BEGIN went out with the last COMMIT gives the count from before that.
   */
  beforePass(seen: number = writes): void {
    if (this.batchOpen === false)
      this.targetSeen = seen; // this pass takes a new target
    else if (this.batchOpen === null) this.targetSeen = -1; // an older target: any write may be unseen
  }

  /** `batchOpen`: the pass left its batch open (true), finished it (false), or cannot say (null). */
  afterPass(batchOpen: boolean | null): void {
    this.batchOpen = batchOpen;
  }

  /** After an idle pass: until a write the pass may not have seen, or the poll (`pollMs`). */
  wait(pollMs: number): Promise<boolean> {
    return waitForOutboxWrite(pollMs, this.targetSeen, WAKE_AFTER_IDLE_MS);
  }
}
