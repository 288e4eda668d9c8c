/** What `backfill-auto` does, step by step through the activities: every table, the loads, the epoch. */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Activities } from '../../activities';
import { BACKFILL_TABLES } from '../../activities/backfill/backfill';
import { LOGICAL_RUN } from './logical-run';

/**
 * In the logical run the backfill's reads reach the store through the outbox, and its last step
 * waits until the drain has applied them: `drainOwner` names the lease a drain takes meanwhile
 * (the test's own owner). The trigger capture's backfill writes the store itself and needs none.
 */
export async function backfillEverything(
  acts: Activities,
  epoch: string,
  opts: { limit?: number; drainOwner?: string } = {},
): Promise<void> {
  const limit = opts.limit ?? 100;
  const steps = async () => {
    for (const table of BACKFILL_TABLES) {
      let after: string[] | null = null;
      do after = (await acts.backfillChunk({ table, after, limit })).last;
      while (after);
    }
    await acts.backfillLoads();
    await acts.finishBackfill({ epoch });
  };
  if (!LOGICAL_RUN) return steps();
  if (!opts.drainOwner)
    throw new Error('backfillEverything in the logical run needs drainOwner (the drain applies it)');
  let done = false;
  const owner = opts.drainOwner;
  const draining = (async () => {
    while (!done) if ((await acts.drainBatch({ owner })).outcome === 'idle') await sleep(20);
  })();
  try {
    await steps();
  } finally {
    done = true;
    await draining;
  }
}
