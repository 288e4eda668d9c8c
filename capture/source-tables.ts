/**
 * The source contract's tables as capture sees them (docs/contracts.md): which service's database
 * holds each, its primary key, and whether the drain needs the row before an update.
 */

import type pg from 'pg';

/** The two source databases of the contract. */
export type SourceName = 'inventory' | 'orders';
export const SOURCE_NAMES: readonly SourceName[] = ['inventory', 'orders'];

export type SourceTable = 'skus' | 'fulfillment_centers' | 'region_fc' | 'inventory' | 'orders';

export interface SourceTableSpec {
  source: SourceName;
  /** Primary-key columns, in the order the outbox key joins them with '|'. */
  keyColumns: readonly string[];
  /**
   * The drain needs the whole row before an update (orders: the FC load is a sum, so an update
   * subtracts the old contribution). Logical replication sends it only under REPLICA IDENTITY FULL.
   */
  needsOldImage: boolean;
}

export const SOURCE_TABLES: Readonly<Record<SourceTable, SourceTableSpec>> = {
  skus: { source: 'inventory', keyColumns: ['sku_id'], needsOldImage: false },
  fulfillment_centers: { source: 'inventory', keyColumns: ['fc_id'], needsOldImage: false },
  region_fc: { source: 'inventory', keyColumns: ['region', 'fc_id'], needsOldImage: false },
  inventory: { source: 'inventory', keyColumns: ['sku_id', 'fc_id'], needsOldImage: false },
  orders: { source: 'orders', keyColumns: ['order_id'], needsOldImage: true },
};

export const SOURCE_SCHEMA = 'shop';

export function isSourceTable(name: string): name is SourceTable {
  return Object.hasOwn(SOURCE_TABLES, name);
}

/**
 * Whether an outbox row is a TRUNCATE the drain applies by emptying and refilling the store
 * (activities/drain/truncates.ts): a 'T' row of a contract table. A 'T' row of another table
 * (written by hand or by a buggy writer) is a malformed change like any other, dead-lettered with
 * its reason: the store holds nothing of such a table, so nothing is emptied for it.
 */
export function isTruncate(row: { op: string | null; tbl: string | null }): boolean {
  return row.op === 'T' && row.tbl !== null && isSourceTable(row.tbl);
}

/** The tables of one source. */
export function tablesOf(source: SourceName): SourceTable[] {
  return (Object.keys(SOURCE_TABLES) as SourceTable[]).filter((t) => SOURCE_TABLES[t].source === source);
}

/**
 * The key columns of an outbox key of `tbl`: the key itself for a table of one key column (an id
 * may hold '|'); null when a key of several columns does not split into exactly them (an id
 * holding '|' makes it ambiguous, and a wrong split would re-read, or delete, another row).
 */
export function keyColumnsOf(tbl: SourceTable, key: string): string[] | null {
  const n = SOURCE_TABLES[tbl].keyColumns.length;
  if (n === 1) return [key];
  const parts = key.split('|');
  return parts.length === n ? parts : null;
}

/**
 * The OIDs of `tables` (in schema shop) in the source's catalog now: which table each is, and what
 * its replica identity lacks for an update or a delete to be captured, if anything, by the rule the
 * stream's Relation messages are judged by (capture/row-image.ts, knowRelation): a table that needs
 * its old rows (orders) needs FULL; the others an identity that holds the contract's key columns
 * (FULL, or the columns of the primary key under DEFAULT, of the identity index under USING INDEX).
 */
export async function contractTableOids(
  source: pg.ClientBase,
  tables: readonly SourceTable[],
): Promise<Map<number, { table: SourceTable; identityLacks?: string }>> {
  const r = await source.query<{ oid: string; relname: SourceTable; identity: string; columns: string[] | null }>(
    `select c.oid::text as oid, c.relname, c.relreplident as identity,
            (select array_agg(a.attname::text) from pg_catalog.pg_index i
               join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
              where i.indrelid = c.oid
                and ((c.relreplident = 'd' and i.indisprimary) or (c.relreplident = 'i' and i.indisreplident))) as columns
       from pg_catalog.pg_class c
       join pg_catalog.pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relname = any($2::text[])`,
    [SOURCE_SCHEMA, tables],
  );
  return new Map(
    r.rows.map((row) => {
      const spec = SOURCE_TABLES[row.relname];
      const full = row.identity === 'f';
      const missing = spec.keyColumns.find((k) => !(row.columns ?? []).includes(k));
      const lacks = spec.needsOldImage
        ? !full && 'replica identity is not FULL: run sql/source-setup.sql on that database'
        : !full &&
          missing !== undefined &&
          `replica identity does not hold its key column ${missing}: set REPLICA IDENTITY DEFAULT (the primary key) or FULL, as sql/source-setup.sql expects`;
      return [Number(row.oid), { table: row.relname, ...(lacks ? { identityLacks: lacks } : {}) }];
    }),
  );
}

/**
 * The source database's own types (OIDs from FirstGenbkiObjectId, 10000, on: those pgoutput
 * announces with a Type message): a domain's base type, resolved through domains over domains;
 * null for any other type. to_json writes a domain's value as its base type's.
 */
export async function sourceTypes(source: pg.ClientBase): Promise<Map<number, number | null>> {
  // (not the row types of tables, views and sequences, nor arrays of them: one each per relation)
  const r = await source.query<{ oid: string; typtype: string; base: string }>(
    `select t.oid::text, t.typtype, t.typbasetype::text as base from pg_catalog.pg_type t
      where t.oid >= 10000 and t.typrelid = 0
        and not exists (select 1 from pg_catalog.pg_type e where e.oid = t.typelem and e.typrelid <> 0)`,
  );
  const rows = new Map(r.rows.map((t) => [Number(t.oid), t]));
  const types = new Map<number, number | null>();
  for (const [oid, t] of rows) {
    if (t.typtype !== 'd') {
      types.set(oid, null);
      continue;
    }
    let base = Number(t.base);
    for (let hops = 0; rows.get(base)?.typtype === 'd' && hops < 100; hops++) base = Number(rows.get(base)!.base);
    types.set(oid, base);
  }
  return types;
}
