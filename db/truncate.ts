import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { withTransaction } from './transaction';

/**
 * Empties the source and the pipeline's tables (tests and benchmarks only). The capture triggers
 * are bypassed (session_replication_role = replica) so the emptying itself is not captured. A
 * deadlock (the TRUNCATE takes its tables' locks one by one, and a rebuild, repair or capture
 * still running from the last case may hold one and want the next) is tried again, a little later
 * each time: PostgreSQL aborted one side, and on a slow machine the other may keep coming back for
 * a while (three attempts at once were seen to lose all three).
 */
export async function truncateEverything(pool: pg.Pool): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await truncateOnce(pool);
    } catch (err) {
      if ((err as { code?: string }).code !== DEADLOCK_DETECTED || attempt >= 8) throw err;
      await sleep(100 * attempt);
    }
  }
}

const DEADLOCK_DETECTED = '40P01';

async function truncateOnce(pool: pg.Pool): Promise<void> {
  await withTransaction(pool, async (client) => {
    await client.query('set local session_replication_role = replica');
    // Say who is in the way instead of waiting forever behind an open transaction.
    await client.query(`set local lock_timeout = '10s'`);
    await client.query(`truncate shop.orders, shop.inventory, shop.region_fc, shop.skus, shop.fulfillment_centers,
      pipeline.outbox, pipeline.consumer_offsets, pipeline.leases, pipeline.dead_letters, pipeline.drain_snapshots,
      pipeline.outbox_holds restart identity`);
    // one drain shard again, not frozen (outbox/shards.ts)
    await client.query(`update pipeline.drain_layout set shards = 1, frozen = null, frozen_at = null`);
  });
}
