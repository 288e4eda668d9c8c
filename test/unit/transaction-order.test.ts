/**
 * The assembler reads transactions only in commit order. The capture skips a transaction at or
 * below the position it wrote (a resend after a crash), so a stream that delivered a later
 * transaction first would make it skip the earlier ones for good: it must fail instead, and the
 * session read again from the slot. (PostgreSQL never sends out of order; a fault test's proxy once
 * did, and the capture lost 17 features' changes without a word.)
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PgoutputMessage } from '../../capture/pgoutput';
import { StreamOrderError, TransactionAssembler } from '../../capture/transactions';

const tx = (xid: number, endLsn: bigint): PgoutputMessage[] => [
  { kind: 'begin', finalLsn: endLsn - 8n, commitTimeUs: 0n, xid },
  { kind: 'commit', commitLsn: endLsn - 8n, endLsn, commitTimeUs: 0n },
];

describe('transaction order', () => {
  it('passes transactions in commit order and fails at the first one out of it', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: 1_000_000 }), { minLength: 1, maxLength: 20 }),
        (positions) => {
          const a = new TransactionAssembler();
          const read: bigint[] = [];
          let failedAt = -1;
          for (const [i, p] of positions.entries()) {
            try {
              for (const m of tx(i + 1, BigInt(p) * 16n)) {
                const done = a.push(m);
                if (done) read.push(done.endLsn);
              }
            } catch (err) {
              expect(err).toBeInstanceOf(StreamOrderError);
              failedAt = i;
              break;
            }
          }
          const firstOutOfOrder = positions.findIndex((p, i) => i > 0 && p < Math.max(...positions.slice(0, i)));
          expect(failedAt).toBe(firstOutOfOrder);
          // what was read is in strictly increasing order
          for (let i = 1; i < read.length; i++) expect(read[i]).toBeGreaterThan(read[i - 1]);
        },
      ),
    );
  });

  it('fails on a Begin inside an open transaction', () => {
    const a = new TransactionAssembler();
    a.push(tx(1, 160n)[0]);
    expect(() => a.push(tx(2, 320n)[0])).toThrow(/Begin \(xid 2\) inside the open transaction xid 1/);
  });
});
