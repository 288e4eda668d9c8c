/**
 * A heartbeat at most every HEARTBEAT_EVERY_MS from an activity that reports after every pass or
 * write. Each heartbeat crosses into Temporal's core (its details converted to a payload and
 * encoded), and the SDK sends the server one at most every 80 % of the heartbeat timeout anyway:
 * at 10,000 changes/s the drain and the two captures called it some 200 times a second, about a
 * tenth of the worker's CPU, for nothing the server or the Web UI would see.
 *
 * 250 ms keeps a heartbeat well inside the shortest heartbeat timeout (capture's 3 s) even when the
 * calls themselves come only every second, so a cancellation (`ops pause`) still arrives with the
 * next heartbeat the SDK sends.
 */
export const HEARTBEAT_EVERY_MS = 250;

/** `send` (the activity's heartbeat), called with `details()` at most every `everyMs`; the first call always sends. */
export function throttledHeartbeat<T>(
  send: (details: T) => void,
  everyMs = HEARTBEAT_EVERY_MS,
  now: () => number = () => performance.now(),
): (details: () => T) => void {
  let last = -Infinity;
  return (details) => {
    const at = now();
    if (at - last < everyMs) return;
    last = at;
    send(details());
  };
}
