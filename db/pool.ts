import pg from 'pg';

// Postgres returns bigint and xid8 as strings; keep them strings (exact) and convert where a
// number is known to be safe.
export function createPool(connectionString: string, max = 10): pg.Pool {
  // JIT off: the pipeline's queries are short index scans, where compiling costs more (tens of
  // milliseconds on a poll that otherwise takes one) than it could ever save.
  const pool = new pg.Pool({ connectionString, max, application_name: 'fresh-badges', options: '-c jit=off' });
  // An idle client losing its connection must not crash the process; the next query reconnects.
  pool.on('error', (err) => console.warn(`[pg] idle client error: ${err.message}`));
  return pool;
}

/** Connects once to fail fast with a clear message instead of a retry storm later. */
export async function checkPostgres(pool: pg.Pool, what = 'PostgreSQL'): Promise<void> {
  try {
    await pool.query('select 1');
  } catch (err) {
    throw new Error(`${what} is not reachable: ${(err as Error).message}`);
  }
}
