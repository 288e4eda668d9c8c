/**
 * The key of an update whose key column was stored out of line and left unchanged: the new tuple
 * does not carry it ('u'). The server's old key tuple tells it (checked against the real server in
 * logical-capture.test.ts); without one the change must not be written under a guessed key.
 */
import { describe, expect, it } from 'vitest';
import { NULL_COLUMN, Tuple, UNCHANGED_COLUMN, type PgoutputMessage } from '../../capture/pgoutput';
import { knowRelation, rowsOfChange, SourceSetupError } from '../../capture/row-image';
import { TransactionAssembler } from '../../capture/transactions';

/** The Relation message of shop.skus, under a replica identity whose columns are `identity`. */
const skusRelation = (replicaIdentity: string, identity: string[]) => ({
  kind: 'relation' as const,
  relationId: 1,
  schema: 'shop',
  table: 'skus',
  replicaIdentity,
  columns: ['sku_id', 'title', 'lifecycle', 'updated_at'].map((name) => ({
    name,
    typeOid: name === 'updated_at' ? 1184 : 25,
    isKey: identity.includes(name),
  })),
});

const skus = knowRelation(skusRelation('d', ['sku_id']));

/** A tuple of text columns; undefined: unchanged out of line, null: SQL NULL. */
function tuple(values: (string | null | undefined)[]): Tuple {
  const texts = values.map((v) => v ?? '');
  const frame = Buffer.from(texts.join(''), 'utf8');
  const spans = new Int32Array(values.length * 2);
  let at = 0;
  values.forEach((v, i) => {
    const len = Buffer.byteLength(texts[i]!, 'utf8');
    spans[2 * i] = v === undefined ? UNCHANGED_COLUMN : v === null ? NULL_COLUMN : at;
    spans[2 * i + 1] = at + len;
    at += len;
  });
  return new Tuple(frame, spans);
}

const longId = 'L'.repeat(3000);

describe('the key of an update that left an out-of-line key unchanged', () => {
  it('comes from the old key tuple, and the image gets the key column from it too', () => {
    const rows = rowsOfChange(skus, {
      kind: 'update',
      relationId: 1,
      oldKind: 'K',
      oldTuple: tuple([longId, null, null, null]),
      newTuple: tuple([undefined, 'a title', 'paused', '2026-12-06 10:00:00+00']),
    });
    expect(rows).toHaveLength(1);
    expect(rows[0]!.op).toBe('U');
    expect(rows[0]!.key).toBe(longId);
    // the key column from the old key; the old key's NULLs fill nothing else
    expect(JSON.parse(rows[0]!.image!)).toEqual({
      sku_id: longId,
      title: 'a title',
      lifecycle: 'paused',
      updated_at: '2026-12-06T10:00:00+00:00',
    });
  });

  it('an unchanged non-key column is left out of the image, not taken from the old key tuple', () => {
    const rows = rowsOfChange(skus, {
      kind: 'update',
      relationId: 1,
      oldKind: 'K',
      oldTuple: tuple([longId, null, null, null]),
      newTuple: tuple([undefined, undefined, 'paused', '2026-12-06 10:00:00+00']),
    });
    expect(JSON.parse(rows[0]!.image!)).not.toHaveProperty('title');
  });

  it('is refused with a clear error when no old key came with it', () => {
    expect(() =>
      rowsOfChange(skus, {
        kind: 'update',
        relationId: 1,
        oldKind: null,
        oldTuple: null,
        newTuple: tuple([undefined, 'a title', 'paused', '2026-12-06 10:00:00+00']),
      }),
    ).toThrow(SourceSetupError);
  });
});

describe('the replica identity a contract table is captured under', () => {
  // (a key column renamed when the change was made: its changes mark the source for a refill)
  it('a contract table without a key column is noted, not thrown', () => {
    const full = skusRelation('f', ['sku_id', 'title', 'lifecycle', 'updated_at']);
    const renamed = { ...full, columns: full.columns.map((c) => (c.name === 'sku_id' ? { ...c, name: 'id' } : c)) };
    expect(knowRelation(renamed).keyMissing).toMatch(/had no column sku_id/);
    expect(knowRelation(full).keyMissing).toBeUndefined();
  });

  it('must hold the key columns: the primary key (DEFAULT) or every column (FULL)', () => {
    expect(knowRelation(skusRelation('d', ['sku_id'])).identityLacks).toBeUndefined();
    expect(knowRelation(skusRelation('f', ['sku_id', 'title', 'lifecycle', 'updated_at'])).keyPositions).toEqual([0]);
    // USING INDEX on another column: deletes would name the row by its title
    expect(knowRelation(skusRelation('i', ['title'])).identityLacks).toMatch(
      /replica identity does not hold its key column sku_id/,
    );
    expect(knowRelation(skusRelation('n', [])).identityLacks).toBeDefined();
  });

  // Noted, not thrown: the change is decoded with the catalog of its time, so a session that threw
  // would throw again on every retry, however the table was mended since. An insert needs nothing
  // old and is captured; an update or a delete marks the source for a refill.
  it('lacking, an insert is captured and an update or a delete marks the transaction uncaptured', () => {
    const a = new TransactionAssembler();
    let lsn = 0n;
    const txOf = (change: PgoutputMessage) => {
      lsn += 160n;
      a.push({ kind: 'begin', finalLsn: lsn - 8n, commitTimeUs: 0n, xid: Number(lsn) });
      a.push(skusRelation('n', []));
      a.push(change);
      return a.push({ kind: 'commit', commitLsn: lsn - 8n, endLsn: lsn, commitTimeUs: 0n })!;
    };
    const row = tuple(['S1', 'a title', 'active', '2026-12-06 10:00:00+00']);
    const inserted = txOf({ kind: 'insert', relationId: 1, newTuple: row });
    expect([inserted.rows.map((r) => `${r.op} ${r.key}`), inserted.uncaptured]).toEqual([['I S1'], undefined]);
    const updated = txOf({ kind: 'update', relationId: 1, oldKind: null, oldTuple: null, newTuple: row });
    expect(updated.rows).toEqual([]);
    expect(updated.uncaptured).toMatch(/^an update of shop\.skus whose replica identity does not hold/);
  });
});
