/**
 * How often the simulator reports: at most once every `everyMs`. Its reports share `npm start`'s
 * output with the worker's messages; one a second (1,064 lines in 24 minutes) buried them.
 */

/** The default interval between two simulator reports. */
export const REPORT_EVERY_MS = 10_000;

/**
 * A gate that opens at most once every `everyMs` (first `everyMs` after it is made): call it as
 * often as convenient; it returns true when a report is due, and then not again for `everyMs`.
 */
export function reportThrottle(everyMs: number = REPORT_EVERY_MS, now: () => number = Date.now): () => boolean {
  let last = now();
  return () => {
    const t = now();
    if (t - last < everyMs) return false;
    last = t;
    return true;
  };
}
