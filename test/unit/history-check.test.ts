/**
 * What the stream sends again below the recorded position (capture/history-check.ts): the same
 * history passes, whatever the slot's position; another history is told by its first transaction
 * (or keepalive) that could not be in the captured one.
 */
import { describe, expect, it } from 'vitest';
import { ResendCheck, walWentBack } from '../../capture/history-check';

const last = { endLsn: 500n, xid: 77, commitMs: 1_700_000_000_123.456 };
const tx = (endLsn: bigint, xid: number, commitMs = 1_700_000_000_000) => ({ endLsn, xid, commitMs });

describe('the re-sent history check', () => {
  it('passes the captured history re-sent after a crash before the slot was told', () => {
    const check = new ResendCheck(600n, last, 100n); // recorded 600 (an idle position past the last transaction)
    expect(check.transaction(tx(200n, 70))).toBeNull();
    expect(check.transaction(tx(400n, 75))).toBeNull();
    expect(check.keepalive(450n)).toBeNull();
    expect(check.transaction({ ...last })).toBeNull();
    expect(check.keepalive(600n)).toBeNull();
    expect(check.transaction(tx(700n, 80))).toBeNull(); // new: past the recorded position
    expect(check.transaction(tx(650n, 81))).toBeNull(); // done: nothing more is checked
  });

  it('passes a slot already past the last transaction (only idle positions were not confirmed)', () => {
    const check = new ResendCheck(600n, last, 550n);
    expect(check.keepalive(620n)).toBeNull();
    expect(new ResendCheck(600n, last, 550n).transaction(tx(610n, 90))).toBeNull();
  });

  it('tells another transaction where the last captured one ended', () => {
    expect(new ResendCheck(600n, last, 100n).transaction(tx(500n, 78))).toMatch(/xid 78 .* where the captured xid 77/);
    // same xid (the counter rewound with a restore) at the same place, another commit time
    expect(new ResendCheck(600n, last, 100n).transaction(tx(500n, 77))).toMatch(/where the captured xid 77/);
  });

  it('tells a transaction ending between the last captured one and the recorded position', () => {
    const check = new ResendCheck(600n, last, 100n);
    expect(check.transaction({ ...last })).toBeNull();
    expect(check.transaction(tx(550n, 79))).toMatch(/between the last transaction captured/);
    expect(new ResendCheck(600n, last, 550n).transaction(tx(580n, 79))).toMatch(/between/);
  });

  it('tells a stream past the recorded position that never sent the last captured transaction again', () => {
    const check = new ResendCheck(600n, last, 100n);
    expect(check.transaction(tx(300n, 60))).toBeNull(); // may be the captured history still
    expect(check.transaction(tx(900n, 61))).toMatch(/was not sent again before xid 61/);
    expect(new ResendCheck(600n, last, 100n).keepalive(601n)).toMatch(/without the last transaction captured/);
  });

  // A keepalive at or past the last captured transaction before it came again is the evidence of
  // another history; a slot confirmed there would leave the next session nothing to tell it by.
  it('lets the slot be confirmed at an idle position only where no evidence is lost', () => {
    const check = new ResendCheck(600n, last, 100n);
    expect(check.mayConfirm(450n)).toBe(true); // before the last transaction: the next session still awaits it
    expect(check.keepalive(550n)).toBeNull(); // not past the recorded position yet: not told here
    expect(check.mayConfirm(550n)).toBe(false); // past the last transaction, which has not come again
    expect(check.transaction({ ...last })).toBeNull();
    expect(check.mayConfirm(550n)).toBe(true); // it came: everything up to here was checked
    expect(new ResendCheck(600n, last, 550n).mayConfirm(580n)).toBe(true); // the slot was past it already
  });

  it('tells a source whose WAL ends before the recorded position', () => {
    expect(walWentBack(0x100n, 0x200n)).toMatch(/ends at 0\/100, before the 0\/200/);
    expect(walWentBack(0x200n, 0x200n)).toBeNull();
    expect(walWentBack(null, 0x200n)).toBeNull(); // a standby: its replay position is no measure
  });
});
