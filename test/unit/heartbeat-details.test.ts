/**
 * A keep-alive heartbeat says again what the activity last reported (activities/heartbeat-details.ts),
 * so the details the Web UI shows for a backfill step waiting on capture or the drain are not
 * wiped every few seconds by the step's keep-alive. Run in Temporal's own activity context.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { heartbeatAgain, heartbeatWith } from '../../activities/heartbeat-details';

describe('heartbeat details', () => {
  it('a keep-alive repeats the last details; nothing before any; each activity its own', async () => {
    const seen: unknown[] = [];
    const env = new MockActivityEnvironment();
    env.on('heartbeat', (d: unknown) => seen.push(d));
    await env.run(async () => {
      heartbeatAgain();
      heartbeatWith({ waitingForCapture: 'skus' });
      heartbeatAgain();
      heartbeatWith({ waitingForDrain: 200 });
      heartbeatAgain();
    });
    expect(seen).toEqual([
      undefined,
      { waitingForCapture: 'skus' },
      { waitingForCapture: 'skus' },
      { waitingForDrain: 200 },
      { waitingForDrain: 200 },
    ]);

    const other: unknown[] = [];
    const env2 = new MockActivityEnvironment();
    env2.on('heartbeat', (d: unknown) => other.push(d));
    await env2.run(async () => heartbeatAgain());
    expect(other).toEqual([undefined]);
  });
});
