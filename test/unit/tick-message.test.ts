/**
 * A tick's message (capture/ticks.ts) carries the source's snapshot as the tick was written, so the
 * capture's horizon (capture/watermark-windows.ts) moves as the tick arrives in the stream, whoever
 * wrote it and however late its writer heard back (with a synchronous standby, after the stream).
 * Its time counts for coverage only in the capture that wrote it: another pipeline reading the
 * same source server writes ticks into the same WAL, stamped by another database's clock. Chunk
 * watermarks too are taken only from their own capture.
 */
import { describe, expect, it } from 'vitest';
import { decodePipelineMessage, TICK_PREFIX } from '../../capture/ticks';
import { TransactionAssembler } from '../../capture/transactions';
import type { PgoutputMessage } from '../../capture/pgoutput';
import { publicationSince } from '../../outbox/capture-progress';

const decode = (v: unknown) => decodePipelineMessage(Buffer.from(JSON.stringify(v)));

/** One source transaction of pipeline messages, as the capture `fb_mine_shop` assembles it. */
function transactionOf(...messages: object[]) {
  const a = new TransactionAssembler('fb_mine_shop');
  a.push({ kind: 'begin', finalLsn: 8n, commitTimeUs: 0n, xid: 7 });
  for (const v of messages) {
    const m: PgoutputMessage = {
      kind: 'message',
      transactional: true,
      lsn: 1n,
      prefix: TICK_PREFIX,
      content: Buffer.from(JSON.stringify(v)),
    };
    a.push(m);
  }
  return a.push({ kind: 'commit', commitLsn: 8n, endLsn: 16n, commitTimeUs: 0n })!;
}

describe('tick messages', () => {
  it('carry the snapshot they were written with and their writer', () => {
    expect(decode({ tick: 1764900000123.5, snap: '100:105:101,103', by: 'fb_pipe_shop' })).toEqual({
      kind: 'tick',
      at: 1764900000123.5,
      snapshot: '100:105:101,103',
      by: 'fb_pipe_shop',
    });
  });

  // (capture/slot.ts, PUBLICATION_FINGERPRINT_SQL; the write compares them: outbox/capture-progress.ts)
  it("carry the publication's fingerprint, kept with the capture's own ticks", () => {
    expect(decode({ tick: 4, by: 'fb_mine_shop', pub: 'abc' })).toEqual({
      kind: 'tick',
      at: 4,
      by: 'fb_mine_shop',
      publication: 'abc',
    });
    expect(transactionOf({ tick: 4, snap: '10:10:', by: 'fb_mine_shop', pub: 'abc' }).ticks).toEqual([
      { at: 4, snapshot: '10:10:', publication: 'abc' },
    ]);
  });

  // (the contract tables' identities, apart from the publication's: workers of the version before
  // compare the publication's fingerprint with their own ticks, which carry no identities)
  it("carry the tables' identities apart", () => {
    expect(transactionOf({ tick: 4, by: 'fb_mine_shop', pub: 'abc', tbl: 'oids' }).ticks).toEqual([
      { at: 4, publication: 'abc', tables: 'oids' },
    ]);
  });

  it('tell a publication changed between two ticks, and nothing when none was recorded before', () => {
    expect(publicationSince(null, [])).toEqual({ fp: null, changed: false });
    expect(publicationSince(null, ['a', 'a'])).toEqual({ fp: 'a', changed: false }); // first: recorded
    expect(publicationSince('a', ['a'])).toEqual({ fp: 'a', changed: false });
    expect(publicationSince('a', ['b'])).toEqual({ fp: 'b', changed: true });
    expect(publicationSince('a', ['a', 'b', 'b'])).toEqual({ fp: 'b', changed: true });
    expect(publicationSince(null, ['a', 'b'])).toEqual({ fp: 'b', changed: true }); // within one write
    expect(publicationSince('a', [])).toEqual({ fp: 'a', changed: false }); // ticks of an older worker
  });

  it('read ticks written before the snapshot was added, and ignore what is not a tick', () => {
    expect(decode({ tick: 5 })).toEqual({ kind: 'tick', at: 5 });
    expect(decode({ tick: 'soon' })).toBeNull();
    expect(decodePipelineMessage(Buffer.from('not json'))).toBeNull();
  });

  it("count for a capture's coverage only when it wrote them; other writers' snapshots still move the horizon", () => {
    const t = transactionOf(
      { tick: 1, snap: '10:10:', by: 'fb_mine_shop' },
      { tick: 2, snap: '11:11:', by: 'fb_other_shop' }, // another pipeline, its clock ahead
      { tick: 3, snap: '12:12:' }, // an older worker's: no writer
    );
    expect(t.ticks).toEqual([{ at: 1, snapshot: '10:10:' }]);
    expect(t.otherTickSnapshots).toEqual(['11:11:', '12:12:']);
  });

  it("take a chunk's watermarks only from the capture that wrote them (another pipeline numbers its chunks alike)", () => {
    expect(decode({ hw: '42', src: 'inventory', by: 'fb_mine_shop' })).toEqual({
      kind: 'watermark',
      chunk: '42',
      edge: 'high',
      source: 'inventory',
      by: 'fb_mine_shop',
    });
    const t = transactionOf(
      { lw: '42', src: 'inventory', by: 'fb_mine_shop' },
      { hw: '42', src: 'inventory', by: 'fb_other_shop' }, // another pipeline's chunk 42
      { hw: '43', src: 'inventory' }, // an older worker's: no writer
    );
    expect(t.watermarks).toEqual([
      { chunk: '42', edge: 'low', source: 'inventory' },
      { chunk: '43', edge: 'high', source: 'inventory' },
    ]);
  });

  it("take a hand-over marker only from their own pipeline's switch", () => {
    const markerOf = (v: object) => transactionOf(v).switchMarker;
    expect(markerOf({ switch: 's1', to: 'trigger', by: 'fb_mine_shop' })).toEqual({ id: 's1', to: 'trigger' });
    expect(markerOf({ switch: 's2', to: 'trigger', by: 'fb_other_shop' })).toBeUndefined(); // another pipeline's
    expect(markerOf({ switch: 's3', to: 'logical' })).toEqual({ id: 's3', to: 'logical' }); // an older worker's
  });
});
