/**
 * At `npm start`: the drain layout in the database (outbox/shards.ts) brought in line with the
 * configuration. The outbox routes rows by STORE_PARTITIONS, and when DRAIN_SHARDS differs from
 * the number of shards draining, the shards are re-split as `ops reshard` does (it loses nothing).
 */
import type { Config } from '../../config';
import { redactText } from '../../config/redact';
import { createPool } from '../../db/pool';
import { reshardDrain } from '../../activities/drain/reshard';
import { readDrainLayout, setRoutePartitions } from '../../outbox';
import { storeKeysFor } from '../../store/keys';
import { createStoreRedis, describeStoreRedis } from '../../store/redis-client';

/** Returns the number of drain shards in force afterwards. */
export async function syncDrainLayout(config: Config, log: (line: string) => void = console.log): Promise<number> {
  const pool = createPool(config.DATABASE_URL, 2);
  try {
    const layout = await readDrainLayout(pool);
    if (layout.shards === 1) await setRoutePartitions(pool, config.STORE_PARTITIONS);
    if (layout.shards === config.DRAIN_SHARDS && !layout.frozen) return layout.shards;
    const redis = createStoreRedis(config, { lazyConnect: true, maxRetriesPerRequest: 3 });
    try {
      await redis.connect().catch((err) => {
        throw new Error(`Redis is not reachable at ${describeStoreRedis(config)}: ${redactText(err.message)}`);
      });
      log(`drain shards: ${layout.shards} in the database, DRAIN_SHARDS=${config.DRAIN_SHARDS}: re-splitting`);
      const r = await reshardDrain(
        { pool, redis, keys: storeKeysFor(config), config, progress: (l) => log(`  ${l}`) },
        config.DRAIN_SHARDS,
      );
      return r.to;
    } finally {
      redis.disconnect();
    }
  } finally {
    await pool.end();
  }
}
