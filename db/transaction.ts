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
    return await inTransaction(client, begin, (c, begun) => fn(c as never, begun));
  } finally {
    if (db instanceof pg.Pool) (client as pg.PoolClient).release();
  }
}

/** Begin, the work, commit; rolled back on error. */
async function inTransaction<T, C extends pg.ClientBase>(
  client: C,
  begin: string,
  fn: (client: C, begun: BeginResult) => Promise<T>,
): Promise<T> {
  try {
    const begun = (await client.query(begin)) as BeginResult;
    const result = await fn(client, begun);
    await client.query('commit');
    return result;
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  }
}
