/**
 * The drain layout's freeze while DRAIN_SHARDS changes (activities/drain/reshard.ts), and the
 * switch to a new number of shards: every write of pipeline.drain_layout's freeze and of the
 * shards' cursors and leases that a re-split makes. The freeze belongs to one owner (the re-split
 * run) and has a lease the owner renews; `splitting` marks a split that has begun rewriting the
 * store's positions, after which nothing may lift it.
 */
import { capturedThroughSql } from './capture-progress';
import type pg from 'pg';
import { names } from '../config';
import type { DrainShard } from './shards';

type Db = pg.Pool | pg.ClientBase;

/** The SET clause that lifts a freeze (whoever lifts it, and the split's switch). */
const UNFROZEN = 'frozen = null, frozen_at = null, frozen_by = null, frozen_until = null';

const leaseUntil = (param: string) => `clock_timestamp() + make_interval(secs => ${param}::float8 / 1000)`;

/** Freezes the drain at a snapshot taken now, held by `owner` for `leaseMs`; `logical`: CAPTURE_MODE=logical. */
export async function takeFreeze(
  client: pg.ClientBase,
  owner: string,
  leaseMs: number,
  logical: boolean,
): Promise<void> {
  await client.query(
    `update pipeline.drain_layout set frozen = pg_current_snapshot(), frozen_at = least(statement_timestamp(), ${capturedThroughSql(logical)}),
            frozen_by = $1, frozen_until = ${leaseUntil('$2')}, splitting = false`,
    [owner, leaseMs],
  );
}

/** Makes `owner` the holder of the freeze in place (its own, or one whose holder is gone). */
export async function adoptFreeze(client: pg.ClientBase, owner: string, leaseMs: number): Promise<void> {
  await client.query(`update pipeline.drain_layout set frozen_by = $1, frozen_until = ${leaseUntil('$2')}`, [
    owner,
    leaseMs,
  ]);
}

/** Renews the lease `owner` holds on the freeze at `snap`; false when it no longer holds that freeze. */
export async function renewFreeze(db: Db, owner: string, snap: string, leaseMs: number): Promise<boolean> {
  const r = await db.query(
    `update pipeline.drain_layout set frozen_until = ${leaseUntil('$3')}
      where frozen_by = $1 and frozen::text = $2 returning 1`,
    [owner, snap, leaseMs],
  );
  return (r.rowCount ?? 0) > 0;
}

/** Lifts the freeze `owner` holds unless its split has begun; returns whether it lifted it. */
export async function liftOwnFreeze(db: Db, owner: string): Promise<boolean> {
  const r = await db.query(
    `update pipeline.drain_layout set ${UNFROZEN} where frozen_by = $1 and not splitting returning 1`,
    [owner],
  );
  return (r.rowCount ?? 0) > 0;
}

/**
 * Lifts a freeze whose lease ran out (its re-split run was terminated or died) unless its split
 * has begun: the drains call it, so an abandoned freeze never stops freshness for longer than the
 * lease. Returns whether it lifted one. The split checks the freeze again under every shard's
 * lock, so a run that comes back late fails instead of splitting.
 */
export async function liftExpiredFreeze(db: Db): Promise<boolean> {
  const r = await db.query(
    `update pipeline.drain_layout set ${UNFROZEN}
      where frozen is not null and not splitting and coalesce(frozen_until < clock_timestamp(), true) returning 1`,
  );
  return (r.rowCount ?? 0) > 0;
}

/** Marks (or unmarks) the freeze's split as begun. */
export async function markSplitting(client: pg.ClientBase, splitting: boolean): Promise<void> {
  await client.query(`update pipeline.drain_layout set splitting = $1`, [splitting]);
}

/** Stamps when routes last changed their partition count (transactions older than this may still route by the old one). */
export async function stampRoutePartitions(db: Db): Promise<void> {
  await db.query(`update pipeline.drain_layout set partitions_set_at = clock_timestamp()`);
}

/** Open transactions of this database older than the last change of the routes' partition count. */
export async function transactionsOlderThanRoutes(client: pg.ClientBase): Promise<number> {
  const r = await client.query(
    `select count(*)::int as n from pg_stat_activity
      where (backend_xid is not null or backend_xmin is not null) and pid <> pg_backend_pid()
        and datname = current_database()
        and xact_start < (select partitions_set_at from pipeline.drain_layout)`,
  );
  return r.rows[0].n;
}

/**
 * Inside the split's transaction: the new shards' cursors start at the freeze snapshot (batch
 * `batch`, last delivered batch `lastBatch`), every other drain cursor row and the old shards'
 * leases go, and the layout says `fresh.length` shards, unfrozen.
 */
export async function switchDrainLayout(
  client: pg.ClientBase,
  input: { fresh: DrainShard[]; old: DrainShard[]; batch: string; lastBatch: string; snap: string; at: number },
): Promise<void> {
  for (const shard of input.fresh)
    await client.query(
      `insert into pipeline.consumer_offsets as c
         (consumer, batch, snap_from, snap_from_at, snap_to, snap_to_at, txid, id, last_batch, last_txid, last_id)
       values ($1, $2, $3::pg_snapshot, to_timestamp($4::float8 / 1000), null, null, '0', 0, $5, '0', 0)
       on conflict (consumer) do update set batch = excluded.batch, snap_from = excluded.snap_from,
         snap_from_at = excluded.snap_from_at, snap_to = null, snap_to_at = null, txid = '0', id = 0,
         last_batch = excluded.last_batch, last_txid = '0', last_id = 0, updated_at = now()`,
      [shard.consumer, input.batch, input.snap, input.at, input.lastBatch],
    );
  // The old shards' cursors and leases, and any cursor row a retired shard's run left behind.
  await client.query(
    `delete from pipeline.consumer_offsets
      where (consumer = $1 or consumer like $1 || '/%') and consumer <> all($2)`,
    [names.drainConsumer, input.fresh.map((s) => s.consumer)],
  );
  await client.query(`delete from pipeline.leases where name = any($1)`, [input.old.map((s) => s.lease)]);
  await client.query(`update pipeline.drain_layout set shards = $1, ${UNFROZEN}, splitting = false`, [
    input.fresh.length,
  ]);
}
