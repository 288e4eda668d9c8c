/**
 * Redis MONITOR on every master of a test's store, reporting only the commands on the store's own
 * db: MONITOR shows every db of the server, and `npm test` runs the logical run (db 13) beside the
 * default run (db 15) on the one local Redis, with the same key names.
 */
import { masterNodes, type StoreRedis } from '../../store/redis-client';

export interface StoreMonitor {
  /** Waits for the last commands' echoes, then stops. */
  stop(): Promise<void>;
}

/** Calls `onCommand` with each command's arguments (name first) and its source ("lua" in a script). */
export async function monitorStore(
  redis: StoreRedis,
  onCommand: (args: string[], source: string) => void,
): Promise<StoreMonitor> {
  const nodes = masterNodes(redis);
  const monitors = await Promise.all(nodes.map((node) => node.monitor()));
  monitors.forEach((m, i) => {
    const db = String(nodes[i]!.options.db ?? 0);
    m.on('monitor', (_time: string, args: string[], source: string, database: string) => {
      if (database === db) onCommand(args, String(source));
    });
  });
  return {
    stop: async () => {
      await new Promise((r) => setTimeout(r, 100));
      for (const m of monitors) m.disconnect();
    },
  };
}
