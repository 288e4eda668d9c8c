/**
 * Redis MONITOR on every master of a test's store, reporting only the commands on the store's own
 * db: MONITOR shows every db of the server, and `npm test` runs the logical run (db 13) beside the
 * default run (db 15) on the one local Redis, with the same key names.
 */
import { randomUUID } from 'node:crypto';
import { masterNodes, type StoreRedis } from '../../store/redis-client';

export interface StoreMonitor {
  /** Stops once every command sent before the call has been reported. */
  stop(): Promise<void>;
}

/** Calls `onCommand` with each command's arguments (name first) and its source ("lua" in a script). */
export async function monitorStore(
  redis: StoreRedis,
  onCommand: (args: string[], source: string) => void,
): Promise<StoreMonitor> {
  const nodes = masterNodes(redis);
  const monitors = await Promise.all(nodes.map((node) => node.monitor()));
  const marker = `store-monitor-${randomUUID()}`;
  const markerSeen = monitors.map(() => {
    let seen = () => {};
    return { promise: new Promise<void>((resolve) => (seen = resolve)), seen: () => seen() };
  });
  let stopping = false;
  const errors: Error[] = [];
  monitors.forEach((m, i) => {
    // Once disconnected, echoes still in the socket (the other run's go on) are replies to no
    // command: ioredis emits an error for each, which would be thrown with no listener.
    const db = String(nodes[i]!.options.db ?? 0);
    m.on('error', (err: Error) => void (stopping || otherDatabasesEcho(err, db) || errors.push(err)));
    m.on('monitor', (_time: string, args: string[], source: string, database: string) => {
      if (database !== db) return;
      if (String(args[0]).toLowerCase() === 'echo' && args[1] === marker) markerSeen[i]!.seen();
      else onCommand(args, String(source));
    });
  });
  return {
    // A command's echo comes in order on each node: once a marker sent after the watched commands
    // is in, so are they (a fixed wait lost them to an event loop busy with the other run's echoes).
    stop: async () => {
      await Promise.all(nodes.map((node) => node.echo(marker)));
      const late = setTimeout(() => markerSeen.forEach((m) => m.seen()), 10_000);
      await Promise.all(markerSeen.map((m) => m.promise));
      clearTimeout(late);
      stopping = true;
      for (const m of monitors) m.disconnect();
      if (errors.length) throw errors[0];
    },
  };
}

/**
 * ioredis's "Command queue state error" for an echo line of another database: the first echoes can
 * reach a monitor connection in the chunk that holds its MONITOR's OK, before ioredis has put it
 * in monitor mode, and each is taken for the reply to no command. Under `npm test` the runs beside
 * this one (other databases of the same Redis) echo all the time. One of this store's database is
 * not ignored: a command the test watches for may be lost with it.
 */
function otherDatabasesEcho(err: Error, db: string): boolean {
  const m = /Command queue state error.*Last reply: [\d.]+ \[(\d+) /.exec(err.message);
  return m !== null && m[1] !== db;
}
