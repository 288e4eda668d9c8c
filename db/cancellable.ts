/**
 * Statements and connection attempts that may wait long, ended when an AbortSignal aborts (an
 * activity cancelled by `ops pause`, a worker shutting down). Creating a logical replication slot
 * waits for every transaction running on the source database: behind one held open, for as long as
 * it stays open.
 *
 * A statement is cancelled from a connection of its own (pg_cancel_backend: a role may cancel its
 * own sessions), and waited for until it has ended, so nothing of it goes on behind the caller's
 * back and PostgreSQL has undone what it began (a slot whose creation is cancelled is dropped: it
 * was still ephemeral). When no cancel gets through (no new connection to the server) or the
 * statement has not ended soon after it, the connection itself is ended.
 *
 * What is thrown on an abort is the signal's reason (Temporal's CancelledFailure for a cancelled
 * activity: the activity then ends as cancelled, not failed), not the error the ended wait raised.
 */
import pg from 'pg';

/** How long a cancelled statement may take to end before its connection is ended instead. */
const CANCEL_GRACE_MS = 5_000;

export interface StatementCancel {
  signal: AbortSignal;
  /** Where the connection that cancels the statement connects: the client's own server, as the same role. */
  connectionString: string;
}

/** `client.query(text, values)`, cancelled when `cancel.signal` aborts (its reason thrown once the statement ended). */
export async function queryCancellable<R extends pg.QueryResultRow = pg.QueryResultRow>(
  client: pg.Client,
  text: string,
  values: unknown[],
  cancel: StatementCancel | undefined,
): Promise<pg.QueryResult<R>> {
  if (!cancel) return client.query<R>(text, values);
  const { signal } = cancel;
  signal.throwIfAborted();
  const pid = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
  signal.throwIfAborted();
  const running = client.query<R>(text, values);
  let stopping: Promise<void> | null = null;
  const stop = () => void (stopping = stopStatement(client, pid, cancel.connectionString, running));
  signal.addEventListener('abort', stop, { once: true });
  try {
    // (a statement that completed as the cancel went out is returned: what it did stands)
    return await running;
  } catch (err) {
    throw signal.aborted ? signal.reason : err;
  } finally {
    signal.removeEventListener('abort', stop);
    // the cancel is through before the caller goes on, so it cannot cancel a later statement
    await stopping;
  }
}

/** `client.connect()`, the attempt ended when `signal` aborts meanwhile (its reason thrown). */
export async function connectCancellable(client: pg.Client, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) {
    await client.connect();
    return;
  }
  signal.throwIfAborted();
  const stop = () => dropConnection(client);
  signal.addEventListener('abort', stop, { once: true });
  try {
    await client.connect();
    // connected as the abort came: the caller must not go on with it
    signal.throwIfAborted();
  } catch (err) {
    if (signal.aborted) dropConnection(client);
    throw signal.aborted ? signal.reason : err;
  } finally {
    signal.removeEventListener('abort', stop);
  }
}

/**
 * Ends a client's connection in whatever phase it is, its pending connect and queries rejected
 * ("Connection terminated unexpectedly"). Not `client.end()`: while the connection is being made
 * (TCP, TLS, authentication) pg only queues a Terminate message, a server that is slow to answer or
 * never answers keeps the socket open, and pg, which then counts the end as asked for, never
 * settles the connect (its own connection timeout included).
 */
export function dropConnection(client: pg.Client): void {
  const socket = (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream;
  if (socket) socket.destroy();
  else void client.end().catch(() => undefined);
}

/**
 * Ends the client's connection, and drops it when the server does not answer within `ms` (a host
 * gone without a reset: end() waits for the server's side of the close, which never comes).
 */
export async function endWithin(client: pg.Client, ms: number): Promise<void> {
  if (!(await settlesWithin(client.end(), ms))) dropConnection(client);
}

/** Cancels the statement; ends the client's connection when that does not end it within CANCEL_GRACE_MS. */
async function stopStatement(
  client: pg.Client,
  pid: number,
  connectionString: string,
  running: Promise<unknown>,
): Promise<void> {
  const cancelled = await cancelBackend(() => connectForCancel(connectionString), pid);
  if (cancelled && (await settlesWithin(running, CANCEL_GRACE_MS))) return;
  await client.end().catch(() => undefined);
}

/**
 * Cancels the statement running on backend `pid` through a connection `open` makes for it (not one
 * the statement's own pool may have to wait for); whether the cancel was sent. Best effort: a
 * cancel that cannot get through returns false.
 */
export async function cancelBackend(open: () => Promise<pg.Client>, pid: number): Promise<boolean> {
  const c = await open().catch(() => null);
  if (!c) return false;
  try {
    return (await c.query<{ sent: boolean }>('select pg_cancel_backend($1) as sent', [pid])).rows[0]?.sent === true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

async function connectForCancel(connectionString: string): Promise<pg.Client> {
  const c = new pg.Client({
    connectionString,
    application_name: 'fresh-badges-cancel',
    connectionTimeoutMillis: CANCEL_GRACE_MS,
  });
  c.on('error', () => undefined); // the failed call reports it
  await c.connect();
  return c;
}

/** Whether `p` settles (either way) within `ms`. */
export async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([
      p.then(
        () => true,
        () => true,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
