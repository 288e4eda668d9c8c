/**
 * Which rows of a chunk read from the source may enter the outbox at its high watermark (the
 * watermark method of Netflix's DBLog, with one gap closed). Pure: capture-loop.ts feeds it the
 * stream's transactions in commit order.
 *
 * A chunk is read like this (capture/watermark-read.ts): a low watermark (LW) is written into the
 * source's WAL; the rows are read in a snapshot S taken after it; a high watermark (HW) follows.
 * At HW, a row read is current unless some transaction changed its key and S did not see that
 * transaction's change. Such transactions are:
 *  - every one between LW and HW in commit order (DBLog's window), whether S saw it or not;
 *  - one just before LW that S still did not see: PostgreSQL makes a commit visible a moment after
 *    writing its commit record, so a commit written just before LW's may not yet be visible when S
 *    is taken. S's in-progress list and xmax say which transactions it did not see; the stream's
 *    Begin message gives each transaction's xid; the recent history (HISTORY_MS of stream) is
 *    searched for them.
 * Keys changed by either are left out of the chunk (the stream's newer change stands); the rest are
 * written at HW's place in the stream, so changes after it apply on top, in order.
 *
 * The history cannot answer for a transaction it never held or no longer holds: one whose commit
 * came before this session's stream began (a synchronous standby that does not answer keeps a
 * commit invisible after its record is written, across a session restart), or one dropped after
 * HISTORY_MS. What covers them is a recent snapshot of the source, the *horizon*: every tick
 * carries the source's snapshot as it was written, and when the tick arrives in the stream that
 * snapshot is kept; the horizon is the one that arrived about HORIZON_MS ago (the session's first
 * snapshot until then).
 *  - A chunk whose snapshot does not cover the horizon (sees less than it) was read too long ago
 *    for what the history keeps: it is read again.
 *  - A transaction the horizon does not see when it leaves the history, and at the session's start
 *    every transaction waiting for a synchronous standby (capture/history-start.ts), is a
 *    *suspect* until the horizon sees it: a chunk whose snapshot does not see a suspect is read
 *    again. A suspect the horizon sees is seen by every chunk that gets this far.
 * (Normally there are no suspects: a commit is visible microseconds after its record is written,
 * and the horizon arrived seconds after the history's oldest transaction.)
 */
import { parseSnapshot, snapshotCovers, visibleIn, type PgSnapshot } from '../db/pg-snapshot';
import type { CapturedRow } from './row-image';

/** How far back the xids of the history reach: far beyond the moment between a commit record and its visibility. */
export const HISTORY_MS = 10_000;
/**
 * How far back the history keeps what each transaction changed. Older entries keep only their xid:
 * a chunk whose snapshot did not see one of those is abandoned and read again (it cannot be told
 * what that transaction changed), which needs a commit made visible seconds after its commit record.
 * Keeping less than all of HISTORY_MS keeps the capture's memory, and its garbage collection, small
 * at high change rates.
 */
export const CHANGES_MS = 3_000;
/**
 * How long ago (by the stream: when its tick arrived) the horizon snapshot is. Well under
 * HISTORY_MS, so a transaction leaving the history is long visible in it; well over the time
 * between a chunk's snapshot and its high watermark in the stream.
 */
export const HORIZON_MS = 5_000;
/**
 * How long a chunk's window may hold the history (from its low watermark until its chunk is worked
 * out): a longer read is abandoned, so a reader that died between its watermarks does not keep
 * the stream's history in memory for good.
 */
export const PIN_MAX_MS = 60_000;
/** More suspects than this (the horizon stalled): every chunk is read again until the session is opened anew. */
const MAX_SUSPECTS = 100_000;

/** What a transaction changed, worked out only when a chunk needs it (most never are). */
export interface TransactionChanges {
  /** "tbl\u0000key" of every row the transaction changed (a TRUNCATE: "tbl\u0000*"), load keys of order changes. */
  keys(): string[];
  /** Its order changes: what a chunk of load sums adds for a transaction its snapshot did not see. */
  orders(): CapturedRow[];
}

interface Seen {
  seq: number;
  /** The 32-bit xid pgoutput's Begin carries. */
  xid: number;
  atMs: number;
  /** Dropped after CHANGES_MS. */
  changes: TransactionChanges | null;
}

export const rowKey = (tbl: string, key: string) => `${tbl}\u0000${key}`;
export const truncateKey = (tbl: string) => `${tbl}\u0000*`;
/** An FC's load of a day ("fc|yyyymmdd"): what an order change touches, for a chunk of load sums. */
export const loadKey = (fcDay: string) => `load\u0000${fcDay}`;

/**
 * What a chunk's window holds from its low watermark until its chunk is worked out: no history
 * entry from `seq` on (and no entry's changes from `changesSeq` on) is dropped meanwhile, so a
 * chunk read for longer than the horizon's HORIZON_MS (the load sums of a big orders table) is
 * judged against the horizon and the suspects of its low watermark, not abandoned at every try.
 */
interface Pin {
  seq: number;
  changesSeq: number;
  /** The horizon when the window opened (undefined before begin(): unit tests of the history alone). */
  horizon: PgSnapshot | undefined;
  /** The suspects when the window opened. */
  suspects: ReadonlySet<bigint>;
  atMs: number;
  /**
   * Held longer than PIN_MAX_MS, or released: the history may have been dropped since, and a chunk
   * worked out now is read again.
   */
  expired: boolean;
}

/** A chunk's window, closed at its high watermark. */
export interface ClosedWindow {
  /** Keys changed between the watermarks. */
  touched: Set<string>;
  /** History entries before this sequence number came before the high watermark. */
  beforeSeq: number;
  /** The oldest history entry kept when it closed: the chunk is worked out later (after a write in flight). */
  fromSeq: number;
  /** Held until release(). */
  pin?: Pin;
}

/** A transaction the snapshot did not see is older than the history keeps changes for: read the chunk again. */
export class HistoryTooShortError extends Error {
  override name = 'HistoryTooShortError';
}

export class WatermarkWindows {
  private readonly open = new Map<string, { touched: Set<string>; pin: Pin }>();
  /** The pins of windows open, or closed and not yet released. */
  private readonly pins = new Set<Pin>();
  /** Entries from `head` on, oldest first (a queue: the front is dropped by moving `head`). */
  private history: Seen[] = [];
  private head = 0;
  /** The first entry that still has its changes. */
  private changesHead = 0;
  private seq = 0;
  /** Source snapshots by the time their ticks arrived, oldest first; the first is the horizon. */
  private readonly snapshots: { snapshot: PgSnapshot; atMs: number }[] = [];
  /** Committed transactions (64-bit xids) the history cannot answer for and the horizon does not see. */
  private readonly suspects = new Set<bigint>();
  private overflowed_ = false;

  /** A transaction of the stream, in commit order (one that changed no row of ours is not kept). */
  see(xid: number, changes: TransactionChanges, atMs: number, changedRows = true): void {
    if (this.open.size) {
      const keys = changes.keys();
      for (const { touched } of this.open.values()) for (const k of keys) touched.add(k);
    }
    if (changedRows) this.history.push({ seq: this.seq++, xid, atMs, changes: memoized(changes) });
    this.forget(atMs);
  }

  private forget(nowMs: number): void {
    const h = this.history;
    const pinned = this.pinned(nowMs);
    while (
      this.changesHead < h.length &&
      h[this.changesHead]!.atMs < nowMs - CHANGES_MS &&
      h[this.changesHead]!.seq < pinned.changesSeq
    )
      h[this.changesHead++]!.changes = null;
    while (this.head < h.length && h[this.head]!.atMs < nowMs - HISTORY_MS && h[this.head]!.seq < pinned.seq) {
      const xid = h[this.head++]!.xid;
      // almost always seen long since: a suspect only in a visibility stall of HISTORY_MS
      const horizon = this.snapshots[0]?.snapshot;
      if (!horizon) continue; // before begin() (unit tests of the history alone)
      const full = widenXid(xid, horizon.xmax);
      if (!visibleIn(horizon, full)) this.suspect(full);
    }
    if (this.head > 1_000 && this.head * 2 > h.length) {
      this.history = h.slice(this.head);
      this.changesHead -= this.head;
      this.head = 0;
    }
  }

  /**
   * The oldest entry (and entry's changes) a pin holds; pins held too long expire here, and so do
   * windows still open with them: a reader that died between its watermarks (a replica that never
   * caught up, a read error, a cancelled activity) never sends the high one, and its window would
   * otherwise collect every later transaction's keys for the session's life. Its high watermark,
   * if it comes after all, finds no window: the chunk is read again, as for any window held longer.
   */
  private pinned(nowMs: number): { seq: number; changesSeq: number } {
    const out = { seq: Infinity, changesSeq: Infinity };
    if (!this.pins.size) return out;
    let expired = false;
    for (const pin of this.pins) {
      if (pin.atMs < nowMs - PIN_MAX_MS) {
        pin.expired = true;
        this.pins.delete(pin);
        expired = true;
        continue;
      }
      out.seq = Math.min(out.seq, pin.seq);
      out.changesSeq = Math.min(out.changesSeq, pin.changesSeq);
    }
    if (expired) for (const [id, w] of this.open) if (w.pin.expired) this.open.delete(id);
    return out;
  }

  /** How many windows are open (low watermark seen, high not yet). */
  get openCount(): number {
    return this.open.size;
  }

  /**
   * The session's start: `snapshot` was taken on the source once the stream began, after reading
   * `waiting`, the transactions whose commit waited for a synchronous standby (their commit records
   * may come before the stream's start: the history will never hold them).
   */
  begin(snapshot: string, waiting: bigint[], atMs: number): void {
    this.snapshots.length = 0;
    this.snapshots.push({ snapshot: parseSnapshot(snapshot), atMs });
    for (const x of waiting) this.suspect(x);
  }

  /** A tick's snapshot of the source, as the tick arrives in the stream at `atMs`. */
  observe(snapshot: string, atMs: number): void {
    const s = parseSnapshot(snapshot);
    const newest = this.snapshots[this.snapshots.length - 1];
    // Only a snapshot that sees at least what the newest kept one sees: the horizon never goes back
    // (ticks of other writers, or written concurrently, can arrive after a newer one).
    if (newest && !snapshotCovers(s, newest.snapshot)) return;
    this.snapshots.push({ snapshot: s, atMs });
    let moved = false;
    while (this.snapshots.length > 1 && this.snapshots[1]!.atMs <= atMs - HORIZON_MS) {
      this.snapshots.shift();
      moved = true;
    }
    if (!moved || !this.suspects.size) return;
    const horizon = this.snapshots[0]!.snapshot;
    for (const x of this.suspects) if (visibleIn(horizon, x)) this.suspects.delete(x);
  }

  private suspect(x: bigint): void {
    if (this.suspects.size >= MAX_SUSPECTS) this.overflowed_ = true;
    else this.suspects.add(x);
  }

  /** Too many suspects to keep: every chunk is read again, and the session should be opened anew. */
  get overflowed(): boolean {
    return this.overflowed_;
  }

  /** How many transactions the history cannot answer for and the horizon does not see. */
  get suspectCount(): number {
    return this.suspects.size;
  }

  /** LW of chunk `id`: from here on, every changed key is noted for it. */
  low(id: string, atMs = Date.now()): void {
    const pin: Pin = {
      seq: this.history[this.head]?.seq ?? this.seq,
      changesSeq: this.history[this.changesHead]?.seq ?? this.seq,
      horizon: this.snapshots[0]?.snapshot,
      suspects: new Set(this.suspects),
      atMs,
      expired: false,
    };
    const was = this.open.get(id);
    if (was) this.pins.delete(was.pin); // a low watermark sent again (a read retried under the same id)
    this.pins.add(pin);
    this.open.set(id, { touched: new Set(), pin });
  }

  /** The chunk of this window was worked out (or abandoned): the history it held may go. */
  release(w: ClosedWindow): void {
    if (!w.pin) return;
    w.pin.expired = true;
    this.pins.delete(w.pin);
  }

  /**
   * HW of chunk `id`: its window closes here. Null when its LW was not seen by this capture (a
   * restart between the two): the chunk is abandoned and read again.
   */
  close(id: string): ClosedWindow | null {
    const open = this.open.get(id);
    if (!open) return null;
    this.open.delete(id);
    return {
      touched: open.touched,
      beforeSeq: this.seq,
      fromSeq: this.history[this.head]?.seq ?? this.seq,
      pin: open.pin,
    };
  }

  /**
   * The keys that must not be written from a chunk read in `snapshot`: those changed in its window,
   * and those changed before its HW by a transaction the snapshot did not see. Throws
   * HistoryTooShortError when such a transaction is older than the history keeps changes for.
   */
  excluded(w: ClosedWindow, snapshot: string): Set<string> {
    const out = new Set(w.touched);
    for (const seen of this.unseen(w, snapshot)) for (const k of seen.keys()) out.add(k);
    return out;
  }

  /**
   * The order changes of every transaction before the HW that the snapshot did not see, in commit
   * order. A sum read in the snapshot plus their deltas is the sum as of the HW, exactly: a
   * transaction the snapshot saw committed before it was taken, so before the HW.
   */
  unseenOrders(w: ClosedWindow, snapshot: string): CapturedRow[] {
    return this.unseen(w, snapshot).flatMap((seen) => seen.orders());
  }

  private unseen(w: ClosedWindow, snapshot: string): TransactionChanges[] {
    const s = parseSnapshot(snapshot);
    if (w.pin?.expired)
      throw new HistoryTooShortError(
        `the chunk's window was released, or its watermarks were more than ${PIN_MAX_MS} ms apart: the history it needed may be gone`,
      );
    // The horizon and suspects of the low watermark: nothing the history held then has been
    // dropped since (the pin), so a later horizon is not needed, and one the chunk's snapshot,
    // taken after the low watermark, does not cover would abandon every long read.
    const horizon = w.pin ? w.pin.horizon : this.snapshots[0]?.snapshot;
    const suspects = w.pin ? w.pin.suspects : this.suspects;
    // The stream went on while the chunk waited (the write before it in flight, the chunk's
    // load): history the window had when it closed may have been dropped since. With a horizon
    // that loses nothing: an entry leaves the history seen by the horizon of then (which the
    // chunk's snapshot covers, checked below: the horizon only moves on) or as a suspect (checked
    // below too). Without one (the history alone, in unit tests), a transaction the snapshot did
    // not see would be taken for seen: read the chunk again instead. (Checked with a horizon too,
    // every chunk of a busy stream was abandoned: under steady traffic the history drops its
    // oldest entries with every transaction that arrives.)
    const first = this.history[this.head]?.seq ?? this.seq;
    if (!horizon && Math.min(first, w.beforeSeq) > w.fromSeq)
      throw new HistoryTooShortError(
        `the stream's history before the chunk's high watermark was dropped (older than ${HISTORY_MS} ms) before the chunk was written`,
      );
    if (horizon) {
      if (this.overflowed_)
        throw new HistoryTooShortError(`more than ${MAX_SUSPECTS} transactions the history cannot answer for`);
      if (!snapshotCovers(s, horizon))
        throw new HistoryTooShortError(
          `the chunk's snapshot is older than the capture's horizon (${HORIZON_MS} ms of stream, or the session's start)`,
        );
      for (const x of suspects)
        if (!visibleIn(s, x))
          throw new HistoryTooShortError(
            `transaction ${x} committed before this capture's history reaches and the chunk's snapshot did not see it (a commit kept invisible, as by a synchronous standby that does not answer)`,
          );
    }
    const out: TransactionChanges[] = [];
    for (let i = this.head; i < this.history.length; i++) {
      const seen = this.history[i]!;
      if (seen.seq >= w.beforeSeq) break;
      if (visibleIn(s, widenXid(seen.xid, s.xmax))) continue;
      if (!seen.changes)
        throw new HistoryTooShortError(
          `transaction ${seen.xid}, committed before the chunk's high watermark and not seen by its snapshot, is older than the ${CHANGES_MS} ms of changes capture keeps`,
        );
      out.push(seen.changes);
    }
    return out;
  }

  /** Forgets the windows (the session restarts from the slot). */
  reset(): void {
    this.open.clear();
    for (const pin of this.pins) pin.expired = true; // a window still pending is read again
    this.pins.clear();
  }
}

/**
 * A 32-bit xid as the 64-bit one (epoch and xid) nearest to `ref`: transactions this recent are
 * within 2^31 of a snapshot's xmax, so the nearest is the one.
 */
export function widenXid(xid: number, ref: bigint): bigint {
  const HALF = 1n << 31n;
  const SPAN = 1n << 32n;
  let x = (ref & ~(SPAN - 1n)) | BigInt(xid >>> 0);
  if (x > ref + HALF) x -= SPAN;
  else if (x < ref - HALF) x += SPAN;
  return x;
}

/**
 * Changes worked out at most once. A class, not closures: one is made per source transaction, and
 * a closure made per call costs a naming call each under tsx (esbuild's keepNames).
 */
class MemoizedChanges implements TransactionChanges {
  private keyList: string[] | null = null;
  private orderRows: CapturedRow[] | null = null;
  constructor(private readonly changes: TransactionChanges) {}
  keys(): string[] {
    return (this.keyList ??= this.changes.keys());
  }
  orders(): CapturedRow[] {
    return (this.orderRows ??= this.changes.orders());
  }
}

const memoized = (c: TransactionChanges): TransactionChanges =>
  c instanceof MemoizedChanges ? c : new MemoizedChanges(c);
