/**
 * Heartbeats that keep what the activity last said. Temporal shows a running activity's last
 * heartbeat details (the Web UI, `describe`); a keep-alive that beats with no details, beside a
 * step that reports what it waits for, would wipe that report every few seconds.
 */
import { Context } from '@temporalio/activity';

/** What each running activity last heartbeat with, by its context (gone with the activity). */
const lastDetails = new WeakMap<Context, unknown>();

/** A heartbeat with `details`, remembered for heartbeatAgain. */
export function heartbeatWith(details: unknown): void {
  const activity = Context.current();
  lastDetails.set(activity, details);
  activity.heartbeat(details);
}

/** A heartbeat that says again what this activity last said through heartbeatWith (nothing, if it has not). */
export function heartbeatAgain(): void {
  const activity = Context.current();
  activity.heartbeat(lastDetails.get(activity));
}
