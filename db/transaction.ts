/**
 * One way to run work in a transaction: begin, commit, roll back on error. Given a pool, on a
 * client of its own (released after); given a client, on that client (the caller's session).
 */
import pg from 'pg';

export async function withTransaction<T>(
  db: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<T>,
  begin?: string,
): Promise<T>;
export async function withTransaction<T, C extends pg.ClientBase>(
  db: C,
  fn: (client: C) => Promise<T>,
  begin?: string,
): Promise<T>;
export async function withTransaction<T>(
  db: pg.Pool | pg.ClientBase,
  fn: (client: never) => Promise<T>,
  begin = 'begin',
): Promise<T> {
  const client = db instanceof pg.Pool ? await db.connect() : db;
  try {
    await client.query(begin);
    const out = await fn(client as never);
    await client.query('commit');
    return out;
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    if (db instanceof pg.Pool) (client as pg.PoolClient).release();
  }
}
