/**
 * pgoutput names a change after its table's name at the time (and a domain column after its domain). A contract table renamed (or moved
 * out of schema shop) and back between two ticks sends its changes under a name capture does not
 * capture, and nothing else would show it: the assembler knows each contract table by its OID
 * (relation id) and marks such a transaction `uncaptured` (the write then marks the source for a
 * refill, outbox/capture-progress.ts). Another table's changes stay skipped without a mark.
 */
import { describe, expect, it } from 'vitest';
import { Tuple, type PgoutputMessage } from '../../capture/pgoutput';
import { TransactionAssembler } from '../../capture/transactions';

const relation = (relationId: number, schema: string, table: string): PgoutputMessage => ({
  kind: 'relation',
  relationId,
  schema,
  table,
  replicaIdentity: 'd',
  columns: ['sku_id', 'title', 'lifecycle', 'updated_at'].map((name) => ({
    name,
    typeOid: name === 'updated_at' ? 1184 : 25,
    isKey: name === 'sku_id',
  })),
});

let lsn = 0n;

/** A tuple of text values, as the decoder makes it (spans into one frame). */
function tupleOf(values: string[]): Tuple {
  const frame = Buffer.from(values.join(''), 'utf8');
  const spans = new Int32Array(values.length * 2);
  let at = 0;
  values.forEach((v, i) => {
    spans[2 * i] = at;
    at += Buffer.byteLength(v, 'utf8');
    spans[2 * i + 1] = at;
  });
  return new Tuple(frame, spans);
}
/** One transaction truncating `relationIds` after the messages `before`; what the assembler made of it. */
function truncateIn(a: TransactionAssembler, before: PgoutputMessage[], relationIds: number[]) {
  lsn += 160n;
  a.push({ kind: 'begin', finalLsn: lsn - 8n, commitTimeUs: 0n, xid: Number(lsn) });
  for (const m of before) a.push(m);
  a.push({ kind: 'truncate', relationIds, cascade: false, restartIdentity: false });
  return a.push({ kind: 'commit', commitLsn: lsn - 8n, endLsn: lsn, commitTimeUs: 0n })!;
}

describe('a contract table under another name', () => {
  it('learned from an earlier Relation message: its changes are uncaptured, marked', () => {
    const a = new TransactionAssembler();
    expect(truncateIn(a, [relation(7, 'shop', 'skus')], [7]).rows.map((r) => r.op)).toEqual(['T']);
    const renamed = truncateIn(a, [relation(7, 'shop', 'skus_tmp')], [7]);
    expect(renamed.rows).toEqual([]);
    expect(renamed.uncaptured).toMatch(/shop\.skus .*named shop\.skus_tmp/);
    expect(truncateIn(a, [relation(7, 'elsewhere', 'skus')], [7]).uncaptured).toBeDefined();
    // back under its own name: captured again, unmarked
    const back = truncateIn(a, [relation(7, 'shop', 'skus')], [7]);
    expect([back.rows.length, back.uncaptured]).toEqual([1, undefined]);
  });

  it("known from the catalog as the session opens: the session's first Relation message may name it otherwise", () => {
    const a = new TransactionAssembler();
    a.knowContractTables(new Map([[7, 'skus']]));
    expect(truncateIn(a, [relation(7, 'shop', 'skus_tmp')], [7]).uncaptured).toBeDefined();
  });

  it('a table outside the contract, and one the name moved away from, are skipped unmarked', () => {
    const a = new TransactionAssembler();
    expect(truncateIn(a, [relation(9, 'shop', 'audit_log')], [9]).uncaptured).toBeUndefined();
    truncateIn(a, [relation(7, 'shop', 'skus')], [7]);
    truncateIn(a, [relation(8, 'shop', 'skus')], [8]); // another table now holds the name
    const old = truncateIn(a, [relation(7, 'shop', 'skus_old')], [7]);
    expect([old.rows, old.uncaptured]).toEqual([[], undefined]);
  });
});

/**
 * A column of a domain type: to_json (the trigger capture) writes its value as the domain's base
 * type, a number for a domain over integer, so capture from the WAL must too. The session learns
 * the source's domains as it opens; a type the stream announces that it did not know then (made
 * since) may be such a domain: its table's changes mark the transaction uncaptured.
 */
describe('a column of a domain type', () => {
  const inventory = (typeOid: number): PgoutputMessage => ({
    kind: 'relation',
    relationId: 5,
    schema: 'shop',
    table: 'inventory',
    replicaIdentity: 'd',
    columns: [
      { name: 'sku_id', typeOid: 25, isKey: true },
      { name: 'fc_id', typeOid: 25, isKey: true },
      { name: 'on_hand', typeOid, isKey: false },
    ],
  });
  const insertIn = (a: TransactionAssembler, before: PgoutputMessage[]) => {
    lsn += 160n;
    a.push({ kind: 'begin', finalLsn: lsn - 8n, commitTimeUs: 0n, xid: Number(lsn) });
    for (const m of before) a.push(m);
    a.push({ kind: 'insert', relationId: 5, newTuple: tupleOf(['S1', 'F1', '5']) });
    return a.push({ kind: 'commit', commitLsn: lsn - 8n, endLsn: lsn, commitTimeUs: 0n })!;
  };

  it('known as the session opened: written as its base type', () => {
    const a = new TransactionAssembler();
    a.knowTypes(new Map([[50_000, 23]])); // a domain over int4
    const t = insertIn(a, [{ kind: 'type', typeOid: 50_000, schema: 'shop', name: 'qty' }, inventory(50_000)]);
    expect(JSON.parse(t.rows[0]!.image!)).toEqual({ sku_id: 'S1', fc_id: 'F1', on_hand: 5 });
  });

  it('made after the session opened: the change is uncaptured, marked', () => {
    const a = new TransactionAssembler();
    a.knowTypes(new Map([[50_000, 23]]));
    const t = insertIn(a, [{ kind: 'type', typeOid: 60_000, schema: 'shop', name: 'qty2' }, inventory(60_000)]);
    expect(t.rows).toEqual([]);
    expect(t.uncaptured).toMatch(/column on_hand is of type shop\.qty2, made after the capture session opened/);
    // the session reads the source's types again: the relation's next change is captured, as a number
    a.knowTypes(
      new Map([
        [50_000, 23],
        [60_000, 23],
      ]),
    );
    const again = insertIn(a, []);
    expect([again.uncaptured, JSON.parse(again.rows[0]!.image!).on_hand]).toEqual([undefined, 5]);
  });
});
