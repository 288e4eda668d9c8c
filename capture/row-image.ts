/**
 * pgoutput row messages → outbox rows, written exactly as the trigger capture wrote them: op I, U,
 * D or T; the key as the primary-key values joined with '|'; the row image as the JSON that
 * PostgreSQL's to_json gives (numbers as numbers, timestamptz as 2026-12-03T16:00:00.5+00:00), so
 * the drain and every consumer downstream cannot tell the two captures apart.
 *
 * An update that moves the primary key becomes a delete of the old key and an insert of the new
 * one, as before: consumers never need to know that keys can move.
 */
import { UNCHANGED_TOAST, type PgoutputMessage, type RelationColumn, type TupleValue } from './pgoutput';
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
  /** JSON encoders per column, from its type. */
  encoders: ((text: string) => string)[];
  /** Each column's `"name":`, the start of its member in an image (worked out once per relation). */
  members: string[];
  /** Positions of the primary-key columns in the tuple. */
  keyPositions: number[];
  replicaIdentity: string;
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

const quote = (text: string) => JSON.stringify(text);

const isDigit = (c: number) => c >= 48 && c <= 57; // '0'..'9'

/** A number's text as a JSON number; NaN and the infinities as strings, as to_json writes them. */
export function numberJson(text: string): string {
  // what /^[-+]?(?:\d|\.\d)/ matches, without a regular expression (one call per number column per row)
  let i = text.charCodeAt(0) === 45 || text.charCodeAt(0) === 43 ? 1 : 0; // '-' '+'
  if (text.charCodeAt(i) === 46) i++; // '.'
  return isDigit(text.charCodeAt(i)) ? text : quote(text);
}

/**
 * A timestamp's text output (DateStyle ISO, TimeZone UTC: 2026-12-03 16:00:00.5+00, maybe " BC")
 * as to_json writes it: 2026-12-03T16:00:00.5+00:00.
 */
export function timestampJson(text: string): string {
  if (text === 'infinity' || text === '-infinity') return quote(text);
  // String operations, not regular expressions: one call per timestamp column per captured row.
  const bc = text.endsWith(' BC');
  const body = bc ? text.slice(0, -3) : text;
  const space = body.indexOf(' ');
  let s = space < 0 ? body : `${body.slice(0, space)}T${body.slice(space + 1)}`;
  const n = s.length;
  const sign = s.charCodeAt(n - 3);
  // an offset of whole hours (+00) gets its minutes (+00:00)
  if ((sign === 43 || sign === 45) && isDigit(s.charCodeAt(n - 2)) && isDigit(s.charCodeAt(n - 1))) s += ':00';
  // digits, '-', ':', '.', 'T', '+', ' BC': nothing JSON escapes
  return `"${bc ? `${s} BC` : s}"`;
}

function encoderFor(typeOid: number): (text: string) => string {
  if (NUMERIC_TYPES.has(typeOid)) return numberJson;
  if (typeOid === BOOL) return (t) => (t === 't' ? 'true' : 'false');
  if (JSON_TYPES.has(typeOid)) return (t) => t;
  if (typeOid === TIMESTAMPTZ || typeOid === TIMESTAMP) return timestampJson;
  return quote;
}

/** Learns a Relation message. Throws SourceSetupError when a contract table lacks what the drain needs. */
export function knowRelation(msg: Extract<PgoutputMessage, { kind: 'relation' }>): KnownRelation {
  const qualifiedName = `${msg.schema}.${msg.table}`;
  const table = msg.schema === SOURCE_SCHEMA && isSourceTable(msg.table) ? msg.table : null;
  const keyPositions: number[] = [];
  if (table) {
    const spec = SOURCE_TABLES[table];
    for (const k of spec.keyColumns) {
      const at = msg.columns.findIndex((c) => c.name === k);
      if (at < 0) throw new SourceSetupError(`${qualifiedName} has no column ${k} (the source contract's key)`);
      keyPositions.push(at);
    }
    if (spec.needsOldImage && msg.replicaIdentity !== 'f')
      throw new SourceSetupError(
        `${qualifiedName} must have REPLICA IDENTITY FULL (the drain subtracts an order's old contribution to the FC load): run sql/source-setup.sql on that database`,
      );
  }
  return {
    table,
    qualifiedName,
    columns: msg.columns,
    encoders: msg.columns.map((c) => encoderFor(c.typeOid)),
    members: msg.columns.map((c) => `${quote(c.name)}:`),
    keyPositions,
    replicaIdentity: msg.replicaIdentity,
  };
}

function keyOf(rel: KnownRelation, tuple: TupleValue[]): string {
  const at = rel.keyPositions;
  if (at.length === 1) return String(tuple[at[0]!]);
  return at.map((k) => String(tuple[k])).join('|'); // join: one flat string (see imageOf)
}

/**
 * The JSON image of a tuple. `only` limits it to the key columns (an old key tuple, whose other
 * columns the server does not send); `fill` supplies columns the server left out as unchanged
 * TOAST (from the old row, under REPLICA IDENTITY FULL). A column still unknown is left out.
 *
 * Built with join, not +=: an image stays in memory for seconds (the pending batch, the watermark
 * history), and a string grown by += is a tree of pieces that also keeps every column's text alive,
 * about 7 times the memory of the flat string join makes (853 against 116 bytes for a 6-column
 * image), all of it copied by every young-generation garbage collection it survives.
 */
function imageOf(rel: KnownRelation, tuple: TupleValue[], only?: number[], fill?: TupleValue[] | null): string {
  const members: string[] = [];
  // index loops, not an iterator over the positions: an iterator result per column showed in the
  // capture's allocations
  const n = only ? only.length : rel.columns.length;
  for (let j = 0; j < n; j++) {
    const i = only ? only[j]! : j;
    let v = tuple[i];
    if (v === UNCHANGED_TOAST && fill) v = fill[i];
    if (v === UNCHANGED_TOAST || v === undefined) continue;
    members.push(rel.members[i]! + (v === null ? 'null' : rel.encoders[i]!(v)));
  }
  if (!members.length) return '{}';
  members[0] = `{${members[0]!}`;
  members[members.length - 1] += '}';
  return members.join(',');
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
  const newKey = keyOf(rel, msg.newTuple);
  const old = msg.oldTuple;
  const newImage = imageOf(rel, msg.newTuple, undefined, msg.oldKind === 'O' ? old : null);
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
