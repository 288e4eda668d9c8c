/**
 * Whether capture may stream from a slot (capture/slot.ts) or must record it lost and create it
 * again: a slot the server invalidated for any reason is unusable, whether it says so through
 * wal_status (removed WAL) or through PostgreSQL 16's conflicting / 17's invalidation_reason
 * (rows removed on a standby, wal_level lowered), where wal_status is not `lost`.
 */
import { describe, expect, it } from 'vitest';
import { slotUsable, type SlotState } from '../../capture/slot';

const slot = (over: Partial<SlotState>): SlotState => ({
  exists: true,
  active: false,
  confirmedFlushLsn: 100n,
  retainedBytes: 0,
  walStatus: 'reserved',
  invalidationReason: null,
  ...over,
});

describe('slotUsable', () => {
  it('takes a slot that exists and was not invalidated', () => {
    expect(slotUsable(slot({}))).toBe(true);
    expect(slotUsable(slot({ walStatus: 'extended' }))).toBe(true);
    expect(slotUsable(slot({ walStatus: 'unreserved' }))).toBe(true); // still streamable until removed
  });

  it('refuses a missing slot, one whose WAL was removed, and one invalidated for another reason', () => {
    expect(slotUsable(slot({ exists: false, walStatus: null }))).toBe(false);
    expect(slotUsable(slot({ walStatus: 'lost' }))).toBe(false);
    expect(slotUsable(slot({ invalidationReason: 'rows_removed' }))).toBe(false);
    expect(slotUsable(slot({ invalidationReason: 'wal_level_insufficient' }))).toBe(false);
  });
});
