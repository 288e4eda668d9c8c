/**
 * A Temporal client opened on first use and closed with the worker: the activities that manage
 * schedules (a re-split's new drain schedules) use it. The worker's NativeConnection serves
 * workers only; a Client needs a connection of its own.
 */
import { Client, Connection, type ConnectionOptions } from '@temporalio/client';

export function lazyTemporalClient(
  options: ConnectionOptions,
  namespace: string,
): { get(): Promise<Client>; close(): Promise<void> } {
  let opened: Promise<{ connection: Connection; client: Client }> | null = null;
  return {
    get() {
      opened ??= Connection.connect(options).then((connection) => ({
        connection,
        client: new Client({ connection, namespace }),
      }));
      opened.catch(() => (opened = null)); // a failed connect is tried again on the next use
      return opened.then((o) => o.client);
    },
    async close() {
      if (opened) await (await opened.catch(() => null))?.connection.close();
    },
  };
}
