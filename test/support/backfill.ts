/** What `backfill-auto` does, step by step through the activities: every table, the loads, the epoch. */
import type { Activities } from '../../activities';
import { BACKFILL_TABLES } from '../../activities/backfill/backfill';

export async function backfillEverything(acts: Activities, epoch: string, limit = 100): Promise<void> {
  for (const table of BACKFILL_TABLES) {
    let after: string[] | null = null;
    do after = (await acts.backfillChunk({ table, after, limit })).last;
    while (after);
  }
  await acts.backfillLoads();
  await acts.finishBackfill({ epoch });
}
