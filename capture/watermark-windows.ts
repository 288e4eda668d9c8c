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
 */
import { parseSnapshot, visibleIn } from '../db/pg-snapshot';
import type { CapturedRow } from './row-image';

/** How far back the history reaches: far beyond the moment between a commit record and its visibility. */
export const HISTORY_MS = 10_000;

interface Seen {
  seq: number;
  /** The 32-bit xid pgoutput's Begin carries. */
  xid: number;
  /** "tbl\u0000key" of every row the transaction changed (a TRUNCATE: "tbl\u0000*"). */
  keys: string[];
  atMs: number;
  /** Its order changes: what a chunk of load sums adds for a transaction its snapshot did not see. */
  orders?: CapturedRow[];
}

export const rowKey = (tbl: string, key: string) => `${tbl}\u0000${key}`;
export const truncateKey = (tbl: string) => `${tbl}\u0000*`;
/** An FC's load of a day ("fc|yyyymmdd"): what an order change touches, for a chunk of load sums. */
export const loadKey = (fcDay: string) => `load\u0000${fcDay}`;

/** A chunk's window, closed at its high watermark. */
export interface ClosedWindow {
  /** Keys changed between the watermarks. */
  touched: Set<string>;
  /** History entries before this sequence number came before the high watermark. */
  beforeSeq: number;
}

export class WatermarkWindows {
  private readonly open = new Map<string, Set<string>>();
  private history: Seen[] = [];
  private seq = 0;

  /** A transaction of the stream, in commit order. */
  see(xid: number, keys: string[], atMs: number, orders?: CapturedRow[]): void {
    for (const touched of this.open.values()) for (const k of keys) touched.add(k);
    if (keys.length) this.history.push({ seq: this.seq++, xid, keys, atMs, ...(orders?.length ? { orders } : {}) });
    if (this.history.length > 1_000 && this.history[0]!.atMs < atMs - HISTORY_MS) {
      const keep = this.history.findIndex((s) => s.atMs >= atMs - HISTORY_MS);
      this.history = keep < 0 ? [] : this.history.slice(keep);
    }
  }

  /** LW of chunk `id`: from here on, every changed key is noted for it. */
  low(id: string): void {
    this.open.set(id, new Set());
  }

  /**
   * HW of chunk `id`: its window closes here. Null when its LW was not seen by this capture (a
   * restart between the two): the chunk is abandoned and read again.
   */
  close(id: string): ClosedWindow | null {
    const touched = this.open.get(id);
    if (!touched) return null;
    this.open.delete(id);
    return { touched, beforeSeq: this.seq };
  }

  /**
   * The keys that must not be written from a chunk read in `snapshot`: those changed in its window,
   * and those changed before its HW by a transaction the snapshot did not see.
   */
  excluded(w: ClosedWindow, snapshot: string): Set<string> {
    const out = new Set(w.touched);
    for (const seen of this.unseen(w, snapshot)) for (const k of seen.keys) out.add(k);
    return out;
  }

  /**
   * The order changes of every transaction before the HW that the snapshot did not see, in commit
   * order. A sum read in the snapshot plus their deltas is the sum as of the HW, exactly: a
   * transaction the snapshot saw committed before it was taken, so before the HW.
   */
  unseenOrders(w: ClosedWindow, snapshot: string): CapturedRow[] {
    return this.unseen(w, snapshot).flatMap((seen) => seen.orders ?? []);
  }

  private unseen(w: ClosedWindow, snapshot: string): Seen[] {
    const s = parseSnapshot(snapshot);
    const out: Seen[] = [];
    for (const seen of this.history) {
      if (seen.seq >= w.beforeSeq) break;
      if (!visibleIn(s, widenXid(seen.xid, s.xmax))) out.push(seen);
    }
    return out;
  }

  /** Forgets the windows (the session restarts from the slot). */
  reset(): void {
    this.open.clear();
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
