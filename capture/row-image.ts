/**
 * pgoutput row messages → outbox rows, written exactly as the trigger capture wrote them: op I, U,
 * D or T; the key as the primary-key values joined with '|'; the row image as the JSON that
 * PostgreSQL's to_json gives (numbers as numbers, timestamptz as 2026-12-03T16:00:00.5+00:00), so
 * the drain and every consumer downstream cannot tell the two captures apart.
 *
 * An update that moves the primary key becomes a delete of the old key and an insert of the new
 * one, as before: consumers never need to know that keys can move.
 */
import { JsonKind, JsonWriter } from './json-bytes';
import {
  NULL_COLUMN,
  UNCHANGED_COLUMN,
  UNCHANGED_TOAST,
  type PgoutputMessage,
  type RelationColumn,
  type Tuple,
} from './pgoutput';
import { isSourceTable, SOURCE_SCHEMA, SOURCE_TABLES, type SourceTable } from './source-tables';

/** One outbox row to write; image and oldImage are JSON text. */
export interface CapturedRow {
  tbl: SourceTable;
  /** R: a row re-read from the source (capture/chunk-rows.ts), applied like an update; S: a load sum re-read. */
  op: 'I' | 'U' | 'D' | 'T' | 'R' | 'S';
  key: string;
  image: string | null;
  oldImage: string | null;
}

/** A relation announced by the stream, with what turning its tuples into images needs. */
export interface KnownRelation {
  table: SourceTable | null; // null: not a table of the contract (skipped)
  qualifiedName: string;
  columns: RelationColumn[];
  /** How each column's text becomes JSON, from its type. */
  kinds: JsonKind[];
  /** Each column's `"name":` as bytes, the start of its member in an image (worked out once per relation). */
  members: Buffer[];
  /** Positions of the primary-key columns in the tuple. */
  keyPositions: number[];
  replicaIdentity: string;
  /**
   * The contract table this relation is, though the stream names it otherwise: renamed (or moved
   * to another schema) when the change was made. Its changes cannot be told apart from another
   * table's by name, and the publication's fingerprint does not change with a name: the capture
   * marks the source for a refill (capture/transactions.ts).
   */
  renamedFrom?: SourceTable;
  /**
   * What the table's replica identity lacks for an update or a delete to be captured (the old key,
   * or the whole old row of a table whose drain subtracts it): such a change cannot be told right,
   * so it marks the source for a refill (capture/transactions.ts). Inserts need nothing old.
   */
  identityLacks?: string;
  /**
   * Why its values cannot be turned into JSON as to_json would (a column of a type created after
   * the session opened, so not known to be a domain over a number, say): its changes mark the
   * source for a refill (capture/transactions.ts).
   */
  typesUnknown?: string;
  /**
   * The contract key column the relation had not when the change was made (renamed, or dropped,
   * and maybe back since): its changes cannot be put under their key, so they mark the source for
   * a refill (capture/transactions.ts). Thrown, the change failed every session that decoded it
   * again, however the table was mended: capture stopped for good.
   */
  keyMissing?: string;
}

export class SourceSetupError extends Error {
  override name = 'SourceSetupError';
}

// Type OIDs (pg_type.oid, fixed for built-in types).
const BOOL = 16;
const NUMERIC_TYPES = new Set([20, 21, 23, 26, 700, 701, 1700]); // int8 int2 int4 oid float4 float8 numeric
const JSON_TYPES = new Set([114, 3802]); // json jsonb
const TIMESTAMPTZ = 1184;
const TIMESTAMP = 1114;

/** How a column of this type becomes JSON (capture/json-bytes.ts). */
export function jsonKindOf(typeOid: number): JsonKind {
  if (NUMERIC_TYPES.has(typeOid)) return JsonKind.Number;
  if (typeOid === BOOL) return JsonKind.Bool;
  if (JSON_TYPES.has(typeOid)) return JsonKind.Raw;
  if (typeOid === TIMESTAMPTZ || typeOid === TIMESTAMP) return JsonKind.Timestamp;
  return JsonKind.Text;
}

/**
 * Learns a Relation message. A contract table without one of its key columns (keyMissing), or with
 * a replica identity that lacks what an update or a delete needs (identityLacks), is noted, not
 * thrown: the change that carried it is decoded with the catalog of its time, so every session
 * would fail on it again, however the table is mended.
 */
export function knowRelation(
  msg: Extract<PgoutputMessage, { kind: 'relation' }>,
  /** A column type's base type (a domain's, as to_json looks through it; the type itself otherwise). */
  baseTypeOf: (typeOid: number) => number = (typeOid) => typeOid,
): KnownRelation {
  const qualifiedName = `${msg.schema}.${msg.table}`;
  const table = msg.schema === SOURCE_SCHEMA && isSourceTable(msg.table) ? msg.table : null;
  const keyPositions: number[] = [];
  let identityLacks: string | undefined;
  let keyMissing: string | undefined;
  if (table) {
    const spec = SOURCE_TABLES[table];
    for (const k of spec.keyColumns) {
      const at = msg.columns.findIndex((c) => c.name === k);
      if (at < 0) {
        keyMissing ??= `while it had no column ${k} (the source contract's key)`;
        continue;
      }
      // A replica identity without the key (USING INDEX on other columns, NOTHING) sends deletes
      // and key moves under other columns: the change would reach the store under a wrong key.
      if (!msg.columns[at]!.isKey)
        identityLacks ??= `replica identity does not hold its key column ${k}: set REPLICA IDENTITY ${spec.needsOldImage ? 'FULL' : 'DEFAULT (the primary key) or FULL'}, as sql/source-setup.sql expects`;
      keyPositions.push(at);
    }
    if (spec.needsOldImage && msg.replicaIdentity !== 'f')
      identityLacks ??= `replica identity is not FULL (the drain subtracts an order's old contribution to the FC load): run sql/source-setup.sql on that database`;
  }
  return {
    ...(identityLacks ? { identityLacks } : {}),
    ...(keyMissing ? { keyMissing } : {}),
    table,
    qualifiedName,
    columns: msg.columns,
    kinds: msg.columns.map((c) => jsonKindOf(baseTypeOf(c.typeOid))),
    members: msg.columns.map((c) => Buffer.from(`${JSON.stringify(c.name)}:`, 'utf8')),
    keyPositions,
    replicaIdentity: msg.replicaIdentity,
  };
}

/**
 * The key of a tuple. A key column stored out of line (a text key over about 2 KB) that an update
 * left unchanged is not resent in the new tuple; the server then sends the old key (it logs the
 * replica identity whenever it has external values), and `old` supplies it. Without it the key
 * cannot be told, and guessing would write the change under a wrong key.
 */
function keyOf(rel: KnownRelation, tuple: Tuple, old: Tuple | null = null): string {
  const at = rel.keyPositions;
  if (at.length === 1) return keyColumn(rel, tuple, at[0]!, old);
  return at.map((k) => keyColumn(rel, tuple, k, old)).join('|'); // join: one flat string (see imageOf)
}

function keyColumn(rel: KnownRelation, tuple: Tuple, i: number, old: Tuple | null): string {
  let v = tuple.value(i);
  if (v === UNCHANGED_TOAST && old && i < old.length) v = old.value(i);
  if (v === UNCHANGED_TOAST)
    throw new SourceSetupError(
      `${rel.qualifiedName}: an update left key column ${rel.columns[i]?.name} unchanged and out of line, and the server sent no old key to tell it (PostgreSQL 15 sends it; an older minor release may not): upgrade the source`,
    );
  return String(v);
}

/** Images are built here, one at a time. */
const writer = new JsonWriter();

/**
 * The JSON image of a tuple. `only` limits it to the key columns (an old key tuple, whose other
 * columns the server does not send); `fill` supplies columns the server left out as unchanged
 * TOAST from the old row: every column under REPLICA IDENTITY FULL, the key columns (`fillOnly`) from
 * an old key tuple. A column still unknown is left out.
 *
 * Written from the frame's bytes into one buffer and made a string once (capture/json-bytes.ts):
 * an image stays in memory for seconds (the pending batch, the watermark history), and is one flat
 * string, with nothing of the columns' texts kept alive beside it.
 */
function imageOf(rel: KnownRelation, tuple: Tuple, only?: number[], fill?: Tuple | null, fillOnly?: number[]): string {
  const w = writer;
  w.reset();
  w.byte(0x7b); // '{'
  // index loops, not an iterator over the positions: an iterator result per column showed in the
  // capture's allocations
  const n = only ? only.length : rel.columns.length;
  for (let j = 0; j < n; j++) {
    const i = only ? only[j]! : j;
    let from = tuple;
    if (i >= from.length) continue;
    if (from.start(i) === UNCHANGED_COLUMN && fill && i < fill.length && (!fillOnly || fillOnly.includes(i)))
      from = fill;
    const start = from.start(i);
    if (start === UNCHANGED_COLUMN) continue;
    if (w.length > 1) w.byte(0x2c); // ','
    const member = rel.members[i]!;
    w.bytes(member, 0, member.length);
    if (start === NULL_COLUMN) w.ascii('null');
    else w.value(rel.kinds[i]!, from.frame, start, from.end(i));
  }
  w.byte(0x7d); // '}'
  return w.text();
}

/** The outbox rows of one row message (none for a table outside the contract). */
export function rowsOfChange(
  rel: KnownRelation,
  msg: Extract<PgoutputMessage, { kind: 'insert' | 'update' | 'delete' }>,
): CapturedRow[] {
  const tbl = rel.table;
  if (!tbl) return [];
  if (msg.kind === 'insert')
    return [{ tbl, op: 'I', key: keyOf(rel, msg.newTuple), image: imageOf(rel, msg.newTuple), oldImage: null }];
  if (msg.kind === 'delete') {
    const only = msg.oldKind === 'K' ? rel.keyPositions : undefined;
    return [{ tbl, op: 'D', key: keyOf(rel, msg.oldTuple), image: imageOf(rel, msg.oldTuple, only), oldImage: null }];
  }
  const old = msg.oldTuple;
  const newKey = keyOf(rel, msg.newTuple, old);
  // the old row fills unchanged out-of-line columns: all of them (REPLICA IDENTITY FULL), or the key's
  const newImage = imageOf(rel, msg.newTuple, undefined, old, msg.oldKind === 'O' ? undefined : rel.keyPositions);
  if (old) {
    const oldKey = keyOf(rel, old);
    if (oldKey !== newKey) {
      const only = msg.oldKind === 'K' ? rel.keyPositions : undefined;
      return [
        { tbl, op: 'D', key: oldKey, image: imageOf(rel, old, only), oldImage: null },
        { tbl, op: 'I', key: newKey, image: newImage, oldImage: null },
      ];
    }
  }
  const oldImage = SOURCE_TABLES[tbl].needsOldImage && old && msg.oldKind === 'O' ? imageOf(rel, old) : null;
  return [{ tbl, op: 'U', key: newKey, image: newImage, oldImage }];
}

/** The outbox rows of a TRUNCATE: one 'T' row per contract table it emptied (cascades included). */
export function rowsOfTruncate(relations: (KnownRelation | undefined)[]): CapturedRow[] {
  return relations.flatMap((rel) =>
    rel?.table ? [{ tbl: rel.table, op: 'T' as const, key: '', image: null, oldImage: null }] : [],
  );
}
