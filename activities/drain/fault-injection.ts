/**
 * Fault injection for the crash tests, off unless FRESH_BADGES_FAULT is set:
 *   FRESH_BADGES_FAULT=kill-after-apply:N  SIGKILL this process right after the N-th batch with
 *                                          rows reached Redis, before its cursor commit: the
 *                                          window the batch claim and the version checks cover.
 *   FRESH_BADGES_FAULT=kill-after-commit:N the same right after the N-th such batch's cursor
 *                                          commit: what the batch raised (rebuild requests) must
 *                                          not be lost with it.
 *   FRESH_BADGES_FAULT=kill-capture-before-write:N  SIGKILL a capture right before its N-th
 *                                          outbox write (the changes are only in its memory)
 *   FRESH_BADGES_FAULT=kill-capture-after-write:N   ... right after its N-th outbox commit, before
 *                                          the slot is told (the server sends them again)
 * A real kill at a chosen instant, which no external timing can hit reliably.
 */
type FaultPoint = 'after-apply' | 'after-commit' | 'capture-before-write' | 'capture-after-write';
const spec = /^kill-(after-apply|after-commit|capture-before-write|capture-after-write):(\d+)$/.exec(
  process.env.FRESH_BADGES_FAULT ?? '',
);
let reached = 0;

export function faultPoint(point: FaultPoint): void {
  if (!spec || spec[1] !== point) return;
  reached += 1;
  if (reached >= Number(spec[2])) process.kill(process.pid, 'SIGKILL');
}
