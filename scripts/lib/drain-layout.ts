/**
 * At `npm start`: the drain layout in the database (outbox/shards.ts) brought in line with the
 * configuration. The outbox routes rows by STORE_PARTITIONS, and when DRAIN_SHARDS differs from
 * the number of shards draining (or a freeze was left behind), the re-split workflow is started,
 * or the one running attached to, as `ops reshard` does: it runs on the worker npm start runs, so
 * nothing here waits for it (the worker and the read API start at once). A re-split to another
 * count already running is left alone, with a warning.
 */
import type { Client } from '@temporalio/client';
import type { Config } from '../../config';
import { createPool } from '../../db/pool';
import { readDrainLayout, setRoutePartitions } from '../../outbox';
import { ReshardBusy, startOrAttachReshard } from './reshard';

/**
 * Returns the number of drain shards in force now (their schedules are the ones to ensure) and
 * the re-split started or followed, if any.
 */
export async function syncDrainLayout(
  config: Config,
  temporal: Client,
  opts: {
    log?: (line: string) => void;
    /** Run with the shard count in force before any re-split starts (npm start's schedules: a re-split replaces them when done). */
    beforeReshard?: (shards: number) => Promise<void>;
  } = {},
): Promise<{ shards: number; reshard: string | null }> {
  const log = opts.log ?? console.log;
  const pool = createPool(config.DATABASE_URL, 2);
  try {
    const layout = await readDrainLayout(pool);
    if (layout.shards === 1) await setRoutePartitions(pool, config.STORE_PARTITIONS);
    await opts.beforeReshard?.(layout.shards);
    if (layout.shards === config.DRAIN_SHARDS && !layout.frozen) return { shards: layout.shards, reshard: null };
    try {
      const { handle, attached } = await startOrAttachReshard(temporal, config, pool, config.DRAIN_SHARDS, {
        startedBy: 'npm start',
      });
      log(
        `drain shards: ${layout.shards} in the database, DRAIN_SHARDS=${config.DRAIN_SHARDS}: ${attached ? 'following the re-split already running' : 're-split started'} (workflow ${handle.workflowId}; the drain goes on meanwhile)`,
      );
      return { shards: layout.shards, reshard: handle.workflowId };
    } catch (err) {
      if (!(err instanceof ReshardBusy)) throw err;
      log(`drain shards: WARNING: ${err.message}`);
      return { shards: layout.shards, reshard: null };
    }
  } finally {
    await pool.end();
  }
}
