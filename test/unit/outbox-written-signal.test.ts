/**
 * The in-process "outbox written" hint (outbox/written-signal.ts): a drain that found nothing new
 * wakes on a capture write instead of its next poll, a little after its idle pass at the soonest,
 * and never waits out a poll for a write its pass may not have seen.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  announceOutboxWrite,
  OutboxWriteWatch,
  outboxWrites,
  WAKE_AFTER_IDLE_MS,
  waitForOutboxWrite,
} from '../../outbox/written-signal';

/** Whether the promise settled within `ms` more (fake time). */
async function settled(p: Promise<unknown>, ms = 0): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  await vi.advanceTimersByTimeAsync(ms);
  return done;
}

describe('the outbox written signal', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('wakes every waiter on a write, before the poll interval', async () => {
    const seen = outboxWrites();
    const a = waitForOutboxWrite(50, seen);
    const b = waitForOutboxWrite(5_000, seen);
    await vi.advanceTimersByTimeAsync(20);
    announceOutboxWrite();
    await expect(a).resolves.toBe(true);
    await expect(b).resolves.toBe(true);
    expect(vi.getTimerCount()).toBe(0); // the poll timers were cleared
  });

  it('a write right after the idle pass wakes the drain no sooner than WAKE_AFTER_IDLE_MS', async () => {
    const waited = waitForOutboxWrite(50, outboxWrites(), WAKE_AFTER_IDLE_MS);
    await vi.advanceTimersByTimeAsync(2);
    announceOutboxWrite();
    expect(await settled(waited)).toBe(false);
    await vi.advanceTimersByTimeAsync(WAKE_AFTER_IDLE_MS - 2);
    await expect(waited).resolves.toBe(true);
  });

  it('returns at once for a write announced since `seen`', async () => {
    const seen = outboxWrites();
    announceOutboxWrite(); // during the pass that found nothing
    expect(await settled(waitForOutboxWrite(60_000, seen))).toBe(true);
  });

  it('waits out the poll interval when nothing is written, and leaves no waiter behind', async () => {
    const waited = waitForOutboxWrite(50, outboxWrites());
    await vi.advanceTimersByTimeAsync(49);
    expect(await settled(waited)).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await expect(waited).resolves.toBe(false);
    announceOutboxWrite(); // a later write finds no stale waiter
    expect(vi.getTimerCount()).toBe(0);
  });

  it("a drain's watch: a write during a batch's first pass is unseen by its later passes; one before is seen", async () => {
    const watch = new OutboxWriteWatch();
    // first pass of an activity: the batch it continues took its target earlier, so any write counts
    watch.beforePass();
    watch.afterPass(false); // it finished the batch
    expect(await settled(watch.wait(50), WAKE_AFTER_IDLE_MS)).toBe(true);

    watch.beforePass(); // a new batch: its target is taken now
    announceOutboxWrite(); // committed after the target: not in it
    watch.afterPass(true); // a full chunk: the batch stays open with that target
    watch.beforePass();
    watch.afterPass(false); // the empty pass that finishes it did not see the write either
    expect(await settled(watch.wait(50), WAKE_AFTER_IDLE_MS)).toBe(true);

    watch.beforePass(); // a new target, after that write
    watch.afterPass(false);
    const idle = watch.wait(50);
    expect(await settled(idle, WAKE_AFTER_IDLE_MS)).toBe(false); // nothing unseen: a write or the poll
    await vi.advanceTimersByTimeAsync(50 - WAKE_AFTER_IDLE_MS);
    await expect(idle).resolves.toBe(false);
  });
});
