/** `ops status`'s line for one source's capture (scripts/ops/status.ts). */
import { describe, expect, it } from 'vitest';
import { describeCapture } from '../../scripts/ops/status';
import type { CaptureSourceStatus } from '../../capture/capture-status';

const streaming: CaptureSourceStatus = {
  source: 'orders',
  slot: 'fb_orders',
  slotState: {
    exists: true,
    active: true,
    confirmedLsn: '0/16B3748',
    retainedBytes: 3 * 1048576,
    walStatus: 'reserved',
    invalidationReason: null,
  },
  lsn: '0/16B3748',
  coveredAtMs: Date.now(),
  lostAtMs: null,
};

describe('ops status: a capture line', () => {
  it('says how far capture is and what the slot keeps', () => {
    expect(describeCapture(streaming)).toMatch(
      /^slot fb_orders streaming, keeps 3\.0 MiB of WAL; at LSN 0\/16B3748, covered until/,
    );
  });

  // A source that joined (orders moved to a database of its own) never had a slot lost: the line
  // says what is pending and both reasons it may be, not "slot lost".
  it('names a pending refill without calling every one a lost slot', () => {
    const line = describeCapture({ ...streaming, lostAtMs: Date.parse('2026-12-06T10:00:00Z') });
    expect(line).toContain('REFILL PENDING since 2026-12-06T10:00:00.000Z');
    expect(line).toContain('or it joined a pipeline');
    expect(line).not.toContain('SLOT LOST');
  });

  it('says a source cannot be reached, and why', () => {
    expect(describeCapture({ ...streaming, slotState: null, error: 'ECONNREFUSED' })).toMatch(
      /^source unreachable: ECONNREFUSED/,
    );
  });

  // `ops status` from a shell without the sources' databases still lists the capture schedules there are
  it('says a slot was not read because this configuration has no database for the source', () => {
    expect(
      describeCapture({
        ...streaming,
        slotState: null,
        unread: 'this configuration has no database for the source orders',
      }),
    ).toMatch(/^slot fb_orders not read: this configuration has no database for the source orders; at LSN 0\/16B3748/);
  });
});
