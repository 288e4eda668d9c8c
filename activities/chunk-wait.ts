import { cancellationSignal } from '@temporalio/activity';
import type { ChunkWait } from '../capture/watermark-read';
import { throttledHeartbeat } from './heartbeat-throttle';
import { inActivity } from './in-activity';
import { heartbeatWith } from './heartbeat-details';

/**
 * How a re-read through a source's capture (capture/watermark-read.ts) waits inside an activity:
 * heartbeating, so a wait behind a lagging capture is not taken for a dead worker (the wait goes on
 * while the capture moves), and ended by the activity's cancellation or timeout, so a retry does not
 * find the last attempt still waiting in a slot. `details`: what each heartbeat carries. Outside an
 * activity (tests, the CLI) nothing.
 */
export function activityChunkWait(details: () => unknown = () => undefined): ChunkWait {
  if (!inActivity()) return {};
  const beat = throttledHeartbeat(heartbeatWith);
  return { signal: cancellationSignal(), heartbeat: () => beat(details) };
}
