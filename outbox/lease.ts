/**
 * The drain lease: one drain workflow run at a time. A schedule uses overlap policy "skip", but a
 * manual trigger (Web UI, SDK) defaults to allow-all, so a second run must find out and step
 * aside. The lease is a row with an owner (the workflow id) and an expiry; a crashed owner's
 * lease lapses after DRAIN_LEASE_TTL_MS. Mutual exclusion of the apply itself does not rest on
 * the lease but on a transaction-scoped advisory lock taken by every batch.
 */
import type pg from 'pg';

export interface LeaseState {
  acquired: boolean;
  holder: string;
  expiresInMs: number;
}

/** The transaction-scoped advisory lock every batch holds while it applies (and commits). */
export const drainLockName = (consumer: string) => `fresh-badges:drain:${consumer}`;

/**
 * Waits for the drain's lock inside the caller's transaction (at most `timeout`), so no batch is
 * between its Redis apply and its cursor commit while the caller works (backfill of loads, the
 * rebuild for an old TRUNCATE dead letter).
 */
export async function waitForDrainLock(client: pg.ClientBase, consumer: string, timeout = '30s'): Promise<void> {
  await client.query(`select set_config('lock_timeout', $1, true)`, [timeout]);
  await client.query('select pg_advisory_xact_lock(hashtext($1))', [drainLockName(consumer)]);
}

/**
 * SQL that takes the lease if free, expired or already ours (extending it when ours), returning the
 * owner when taken; its parameters name, owner and TTL (ms) start at $`first` (a null name: nothing).
 */
export const TAKE_LEASE_SQL = (first: number) => `insert into pipeline.leases as l (name, owner, expires_at)
     select $${first}::text, $${first + 1}::text, clock_timestamp() + $${first + 2}::float8 * interval '1 millisecond'
      where $${first}::text is not null
     on conflict (name) do update set owner = excluded.owner, expires_at = excluded.expires_at
       where l.owner = excluded.owner or l.expires_at < clock_timestamp()
     returning owner`;

/** Takes the lease if free, expired or already ours; extends it either way when ours. */
export async function acquireLease(
  db: pg.Pool | pg.ClientBase,
  name: string,
  owner: string,
  ttlMs: number,
): Promise<LeaseState> {
  const r = await db.query(TAKE_LEASE_SQL(1), [name, owner, ttlMs]);
  if (r.rowCount) return { acquired: true, holder: owner, expiresInMs: ttlMs };
  const held = await db.query(
    `select owner, greatest(0, extract(epoch from expires_at - clock_timestamp()) * 1000) as ms from pipeline.leases where name = $1`,
    [name],
  );
  return {
    acquired: false,
    holder: held.rows[0]?.owner ?? '?',
    expiresInMs: Math.round(Number(held.rows[0]?.ms ?? 0)),
  };
}

/** SQL: who holds the lease named by the SQL expression `name` right now (no row: free or expired). */
export const LEASE_HOLDER_SQL = (name: string) =>
  `select owner from pipeline.leases where name = ${name} and expires_at >= clock_timestamp()`;

/** SQL: how long the lease named by the SQL expression `name` has left (ms; no row: free or expired). */
export const LEASE_LEFT_MS_SQL = (name: string) =>
  `select (extract(epoch from expires_at - clock_timestamp()) * 1000)::float8 from pipeline.leases where name = ${name} and expires_at >= clock_timestamp()`;

/** Who holds the lease right now (null when free or expired). */
export async function leaseHolder(db: pg.Pool | pg.ClientBase, name: string): Promise<string | null> {
  const r = await db.query(LEASE_HOLDER_SQL('$1'), [name]);
  return r.rows[0]?.owner ?? null;
}

export async function releaseLease(db: pg.Pool | pg.ClientBase, name: string, owner: string): Promise<boolean> {
  const r = await db.query(`delete from pipeline.leases where name = $1 and owner = $2`, [name, owner]);
  return (r.rowCount ?? 0) > 0;
}

/** Deletes every lease `owner` holds (a process done with the shards it drove). */
export async function releaseLeasesOf(db: pg.Pool | pg.ClientBase, owner: string): Promise<void> {
  await db.query(`delete from pipeline.leases where owner = $1`, [owner]);
}
