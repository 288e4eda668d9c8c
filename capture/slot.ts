/**
 * The replication slot on a source database: created by capture itself (the login role has
 * REPLICATION), inspected for `ops status` and the retained-WAL metric, and dropped by `ops`.
 * A slot keeps the WAL its consumer has not confirmed: docs/operations.md says how to cap it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { queryCancellable, type StatementCancel } from '../db/cancellable';
import { parseLsn } from './pgoutput';

export interface SlotState {
  exists: boolean;
  active: boolean;
  /** The position the server resumes the stream from. */
  confirmedFlushLsn: bigint | null;
  /** Bytes of WAL the slot keeps on the source (current WAL position − restart_lsn). */
  retainedBytes: number;
  /** `reserved`, `extended`, `unreserved` or `lost` (PostgreSQL ≥ 13). */
  walStatus: string | null;
  /**
   * Why the server invalidated the slot, when it says so: `invalidation_reason` (PostgreSQL ≥ 17:
   * wal_removed, rows_removed, wal_level_insufficient, idle_timeout), or `rows_removed` when only
   * PostgreSQL 16's `conflicting` is true. A slot invalidated for a reason other than removed WAL
   * keeps a wal_status that is not `lost`, yet every stream from it fails.
   */
  invalidationReason: string | null;
}

export async function readSlot(source: pg.ClientBase | pg.Pool, slot: string): Promise<SlotState> {
  // The columns of newer versions are read through to_jsonb (absent on older ones: null).
  const r = await source.query<{
    active: boolean;
    confirmed: string | null;
    retained: string | null;
    wal_status: string | null;
    reason: string | null;
    conflicting: string | null;
  }>(
    `select active, confirmed_flush_lsn::text as confirmed,
            pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::text as retained, wal_status,
            to_jsonb(s) ->> 'invalidation_reason' as reason, to_jsonb(s) ->> 'conflicting' as conflicting
       from pg_replication_slots s where slot_name = $1`,
    [slot],
  );
  const row = r.rows[0];
  if (!row)
    return {
      exists: false,
      active: false,
      confirmedFlushLsn: null,
      retainedBytes: 0,
      walStatus: null,
      invalidationReason: null,
    };
  return {
    exists: true,
    active: row.active,
    confirmedFlushLsn: row.confirmed ? parseLsn(row.confirmed) : null,
    retainedBytes: Number(row.retained ?? 0),
    walStatus: row.wal_status,
    invalidationReason: row.reason ?? (row.conflicting === 'true' ? 'rows_removed' : null),
  };
}

/** A slot capture can stream from: it exists and was not invalidated. */
export const slotUsable = (s: SlotState): boolean =>
  s.exists && s.walStatus !== 'lost' && s.invalidationReason === null;

/**
 * Creates the slot unless it exists. Returns true when it was created now: changes before this
 * moment are not in it, so the store needs a fill from a snapshot of that source.
 * `beforeCreate` runs when the slot was found missing or unusable, before it is dropped and created
 * again: the one reading that decides to create it is the one a caller learns of (a second reading
 * of its own could find the slot still usable and miss that it was lost a moment later).
 *
 * `cancel` (on a client, not a pool: the cancel names its backend) ends the wait for the
 * transactions running on the source (`ops pause`, a worker's shutdown): the signal's reason is
 * thrown. Aborted before `beforeCreate`, nothing was done; during the creation, the statement is
 * cancelled and PostgreSQL drops the slot it had begun (db/cancellable.ts), so the next call finds
 * it missing as this one did. A creation that completed as the cancel went out stands (true).
 */
export async function ensureSlot(
  source: pg.ClientBase | pg.Pool,
  slot: string,
  beforeCreate?: (found: SlotState) => Promise<void>,
  cancel?: StatementCancel,
): Promise<boolean> {
  const existing = await readSlot(source, slot);
  if (slotUsable(existing)) return false;
  cancel?.signal.throwIfAborted();
  await beforeCreate?.(existing);
  if (existing.exists) await dropSlot(source, slot);
  const sql = `select pg_create_logical_replication_slot($1, 'pgoutput')`;
  try {
    if (cancel && source instanceof pg.Client) await queryCancellable(source, sql, [slot], cancel);
    else await source.query(sql, [slot]);
    return true;
  } catch (err) {
    // 42710: created meanwhile by another capture run of the same source
    if ((err as { code?: string }).code === '42710') return false;
    throw err;
  }
}

/**
 * Drops the slot once no session streams from it (the walsender of a session that just failed may
 * hold it a moment longer), waiting up to `waitMs`; then as dropSlot, which fails on a slot still
 * active.
 */
export async function dropSlotOnceFree(
  source: pg.ClientBase | pg.Pool,
  slot: string,
  waitMs = 10_000,
): Promise<boolean> {
  const deadline = Date.now() + waitMs;
  while ((await readSlot(source, slot)).active && Date.now() < deadline) await sleep(100);
  return dropSlot(source, slot);
}

export async function dropSlot(source: pg.ClientBase | pg.Pool, slot: string): Promise<boolean> {
  const r = await source.query(
    `select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1`,
    [slot],
  );
  return (r.rowCount ?? 0) > 0;
}

/**
 * SQL: the tables of `tables` ($tables, text[], in schema `shop`) the publication ($publication)
 * does not carry in full, as text[] in name order: not in it, or in it without one of inserts,
 * updates, deletes and truncates, with a row filter, or with a column list that leaves a column
 * out (PostgreSQL 15; read through to_jsonb, as older servers have neither). Every table when the
 * publication does not exist. Such changes never reach the outbox, while ticks, which need no
 * table, go on vouching for the source.
 */
export const UNPUBLISHED_TABLES_SQL = (publication: string, tables: string) => `array(
  select t from unnest(${tables}::text[]) as t
   where not exists (
     select 1 from pg_publication p join pg_publication_tables pt on pt.pubname = p.pubname
      where p.pubname = ${publication} and pt.schemaname = 'shop' and pt.tablename = t
        and p.pubinsert and p.pubupdate and p.pubdelete and p.pubtruncate
        and to_jsonb(pt)->>'rowfilter' is null
        and (to_jsonb(pt)->'attnames' is null
             or jsonb_array_length(to_jsonb(pt)->'attnames') =
                (select count(*) from pg_attribute a
                  where a.attrelid = to_regclass(format('shop.%I', t)) and a.attnum > 0
                    and not a.attisdropped and a.attgenerated = '')))
   order by t)`;

/**
 * SQL: a fingerprint (text) of the publication ($publication) as it concerns `tables` ($tables,
 * text[], in schema `shop`): the identity and row version (xmin) of its pg_publication row, which
 * an ALTER PUBLICATION … SET (publish = …) rewrites, and of its pg_publication_rel row for each of
 * the tables, which dropping a table from it and adding it back, or changing its row filter or
 * column list, replaces. So it differs after any such change, even one undone since, while a
 * change for other tables or a vacuum of the catalog leaves it as it was. Checked UNPUBLISHED_TABLES_SQL
 * says whether the publication is complete now; this says whether it stayed so between two ticks
 * (docs/capture.md). From PostgreSQL 15 on, a publication FOR TABLES IN SCHEMA shop carries the
 * tables through its row in pg_publication_namespace, which dropping the schema from it and adding
 * it back replaces: that row's version is in it too (none for a publication that lists the tables,
 * as sql/source-setup.sql writes it, so its fingerprint is the same as without the catalog).
 * (The tables' own identities are TABLES_FINGERPRINT_SQL's.)
 */
export const PUBLICATION_FINGERPRINT_SQL = (publication: string, tables: string) => `(
  select md5(coalesce(string_agg(x, ',' order by x), ''))
    from (select 'p' || p.oid::text || ':' || p.xmin::text as x from pg_publication p where p.pubname = ${publication}
          union all
          select 'r' || r.oid::text || ':' || r.xmin::text
            from pg_publication p join pg_publication_rel r on r.prpubid = p.oid
           where p.pubname = ${publication}
             and r.prrelid in (select to_regclass(format('shop.%I', t)) from unnest(${tables}::text[]) as t)
          union all
          ${SCHEMA_ROW_SQL(publication)}) f)`;

/**
 * SQL: a fingerprint (text) of the identities (OIDs) of `tables` ($tables, text[], in schema
 * `shop`): under a publication of the schema or of all tables, a table dropped and made again, or
 * another renamed into its name, is carried with no catalog row of the publication changing, while
 * the store still holds the old table's rows and the new one's changes before the swap went by
 * under another name. Compared between ticks as the publication's is (outbox/capture-progress.ts).
 */
export const TABLES_FINGERPRINT_SQL = (tables: string) => `(
  select md5(string_agg(t || ':' || coalesce(to_regclass(format('shop.%I', t))::oid::text, ''), ',' order by t))
    from unnest(${tables}::text[]) as t)`;

/**
 * SQL rows: the version of the publication's pg_publication_namespace row for schema shop ('n' and
 * its XML), none when it has none or the server (before PostgreSQL 15) has no such catalog. Through
 * query_to_xml, which runs the query only when the catalog exists: a statement naming a missing
 * catalog fails as a whole, and nothing may be created in a source to tell the versions apart.
 * to_regnamespace, not a cast: a schema shop renamed or dropped must leave the tick statement
 * running, so UNPUBLISHED_TABLES_SQL can say every table is missing.
 */
const SCHEMA_ROW_SQL = (publication: string) => `
          select 'n' || x from (
            select case when to_regclass('pg_catalog.pg_publication_namespace') is not null then
              query_to_xml(format('select n.oid::text || '':'' || n.xmin::text as s
                                     from pg_catalog.pg_publication_namespace n join pg_catalog.pg_publication p on p.oid = n.pnpubid
                                    where p.pubname = %L and n.pnnspid = to_regnamespace(%L) order by 1',
                                  (select p.pubname from pg_publication p where p.pubname = ${publication}), 'shop'),
                           false, true, '')::text
            end as x) q
           where x <> ''`;

/**
 * Whether a transaction that was in progress in a snapshot whose xmax is `xmax` (an xid8, as
 * text) may still run on the database: one below it is not yet visible to every snapshot.
 */
export async function transactionsBeforeRunning(db: pg.ClientBase | pg.Pool, xmax: string): Promise<boolean> {
  const r = await db.query<{ running: boolean }>(
    `select pg_snapshot_xmin(pg_current_snapshot()) < $1::xid8 as running`,
    [xmax],
  );
  return r.rows[0]!.running;
}

/** The source's tables its publication does not carry in full (UNPUBLISHED_TABLES_SQL). */
export async function unpublishedTables(
  source: pg.ClientBase | pg.Pool,
  publication: string,
  tables: readonly string[],
): Promise<string[]> {
  const r = await source.query<{ missing: string[] }>(`select ${UNPUBLISHED_TABLES_SQL('$1', '$2')} as missing`, [
    publication,
    tables,
  ]);
  return r.rows[0]!.missing;
}

/** Whether the publication exists on the source (sql/source-setup.sql creates it). */
export async function publicationExists(source: pg.ClientBase | pg.Pool, publication: string): Promise<boolean> {
  const r = await source.query(`select 1 from pg_publication where pubname = $1`, [publication]);
  return (r.rowCount ?? 0) > 0;
}
