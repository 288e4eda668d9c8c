import pg from 'pg';
import { redactText } from '../config/redact';
import { logger } from '../log/logger';

/** The server's TCP keepalive settings for the pipeline's connections (see createPool). */
export const SERVER_KEEPALIVES = '-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3';

// Postgres returns bigint and xid8 as strings; keep them strings (exact) and convert where a
// number is known to be safe.
export function createPool(connectionString: string, max = 10): pg.Pool {
  // JIT off: the pipeline's queries are short index scans, where compiling costs more (tens of
  // milliseconds on a poll that otherwise takes one) than it could ever save.
  // keepAlive + connectionTimeoutMillis: a dead server or a cut network is noticed in seconds
  // instead of a query or a connect hanging until the OS gives up (minutes).
  // The server's keepalives (tcp_keepalives_*): the other way round. A worker's host gone without
  // closing its sockets (power lost, a VM pre-empted) leaves its backend holding the drain's
  // advisory lock in an open transaction until the server's OS gives up on it (about two hours by
  // default: every other worker's drain finds the shard busy and reads go stale). Probed after 10 s
  // of silence, every 5 s, 3 times: let go within about 25 s.
  const pool = new pg.Pool({
    connectionString,
    max,
    application_name: 'fresh-badges',
    options: `-c jit=off ${SERVER_KEEPALIVES}`,
    keepAlive: true,
    keepAliveInitialDelayMillis: 5_000,
    connectionTimeoutMillis: 5_000,
  });
  // A connection lost while idle in the pool, or while checked out between queries (the server
  // restarted: "terminating connection due to administrator command"), emits 'error' on the
  // client; with no listener Node kills the process. The pool listens only to idle clients, so
  // every client gets its own listener for its whole life. The failed query, if any, still rejects
  // and the activity retries; the broken client is discarded on release.
  let lastWarn = 0;
  const warn = (err: Error) => {
    if (Date.now() - lastWarn < 5_000) return;
    lastWarn = Date.now();
    logger('pg').warn(`connection lost: ${redactText(err.message)} (queries fail and are retried until it is back)`);
  };
  pool.on('error', warn);
  pool.on('connect', (client) => client.on('error', warn));
  return pool;
}

/** Connects once to fail fast with a clear message instead of a retry storm later. */
export async function checkPostgres(pool: pg.Pool, what = 'PostgreSQL'): Promise<void> {
  try {
    await pool.query('select 1');
  } catch (err) {
    // eslint-disable-next-line preserve-caught-error -- the driver's error can hold the URL and its password: only the redacted message goes on
    throw new Error(`${what} is not reachable: ${redactText((err as Error).message)}`);
  }
}

/**
 * A connection of its own to the pool's database, as the pool's role and with its settings, for a
 * statement that may run for minutes (a VACUUM): taken from the pool, it would keep one of the
 * connections the drain needs (10 per worker) for that long. The caller ends it.
 */
export async function connectBeside(pool: pg.Pool, applicationName: string): Promise<pg.Client> {
  // (a password given apart from the URL is not enumerable on the pool's options: named here)
  const client = new pg.Client({ ...pool.options, password: pool.options.password, application_name: applicationName });
  // a connection lost while idle would end the process without a listener; the statement in flight reports it
  client.on('error', () => {});
  await client.connect();
  return client;
}
