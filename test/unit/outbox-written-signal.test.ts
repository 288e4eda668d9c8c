/**
 * The in-process "outbox written" hint (outbox/written-signal.ts): a drain that found nothing new
 * wakes on a capture write instead of its next poll, and never misses one announced while its pass
 * ran.
 */
import { describe, expect, it, vi } from 'vitest';
import { announceOutboxWrite, outboxWrites, waitForOutboxWrite } from '../../outbox/written-signal';

describe('the outbox written signal', () => {
  it('wakes every waiter on a write, before the poll interval', async () => {
    vi.useFakeTimers();
    try {
      const seen = outboxWrites();
      const a = waitForOutboxWrite(50, seen);
      const b = waitForOutboxWrite(5_000, seen);
      announceOutboxWrite();
      await expect(a).resolves.toBe(true);
      await expect(b).resolves.toBe(true);
      expect(vi.getTimerCount()).toBe(0); // the poll timers were cleared
    } finally {
      vi.useRealTimers();
    }
  });

  it('returns at once for a write announced since the pass began', async () => {
    const seen = outboxWrites();
    announceOutboxWrite(); // during the pass that found nothing
    await expect(waitForOutboxWrite(60_000, seen)).resolves.toBe(true);
  });

  it('waits out the poll interval when nothing is written', async () => {
    vi.useFakeTimers();
    try {
      const waited = waitForOutboxWrite(50, outboxWrites());
      await vi.advanceTimersByTimeAsync(49);
      let done = false;
      void waited.then(() => (done = true));
      await Promise.resolve();
      expect(done).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      await expect(waited).resolves.toBe(false);
      announceOutboxWrite(); // a later write finds no stale waiter
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});
