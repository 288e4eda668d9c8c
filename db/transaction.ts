/**
 * One way to run work in a transaction: begin, commit, roll back on error. Given a pool, on a
 * client of its own (released after); given a client, on that client (the caller's session).
 */
import pg from 'pg';

/**
 * What the begin statement returned: `begin` may carry more statements after BEGIN (no parameters),
 * so their results come in the same round trip (then one result per statement).
 */
export type BeginResult = pg.QueryResult | pg.QueryResult[];

export async function withTransaction<T>(
  db: pg.Pool,
  fn: (client: pg.PoolClient, begun: BeginResult) => Promise<T>,
  begin?: string,
): Promise<T>;
export async function withTransaction<T, C extends pg.ClientBase>(
  db: C,
  fn: (client: C, begun: BeginResult) => Promise<T>,
  begin?: string,
): Promise<T>;
export async function withTransaction<T>(
  db: pg.Pool | pg.ClientBase,
  fn: (client: never, begun: BeginResult) => Promise<T>,
  begin = 'begin',
): Promise<T> {
  const client = db instanceof pg.Pool ? await db.connect() : db;
  try {
    return await inTransaction(client, begin, async (c, begun) => ({ result: await fn(c as never, begun), end: null }));
  } finally {
    if (db instanceof pg.Pool) (client as pg.PoolClient).release();
  }
}

/**
 * A transaction on a client of the pool whose work ends in one more statement sent with the
 * COMMIT, as one simple query (one round trip for two). `fn` returns its result and that statement
 * (text without parameters: db/inline-params.ts), or none. If the statement fails, the COMMIT
 * is not run and the transaction is rolled back.
 */
export async function withTransactionEndingIn<T>(
  db: pg.Pool,
  begin: string,
  fn: (client: pg.PoolClient, begun: BeginResult) => Promise<{ result: T; end: string | null }>,
): Promise<T> {
  const client = await db.connect();
  try {
    return await inTransaction(client, begin, fn);
  } finally {
    client.release();
  }
}

/** Begin, the work, then its last statement (if any) with the COMMIT; rolled back on error. */
async function inTransaction<T, C extends pg.ClientBase>(
  client: C,
  begin: string,
  fn: (client: C, begun: BeginResult) => Promise<{ result: T; end: string | null }>,
): Promise<T> {
  try {
    const begun = (await client.query(begin)) as BeginResult;
    const { result, end } = await fn(client, begun);
    await client.query(end ? `${end}; commit` : 'commit');
    return result;
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  }
}
