/**
 * PostgreSQL snapshots (`pg_snapshot`, text form "xmin:xmax:xip,xip,…") as plain values, with the
 * visibility rule PostgreSQL itself applies (pg_visible_in_snapshot): a transaction id is visible
 * in a snapshot when it is below xmax and not in the in-progress list. Pure, so it is unit-tested
 * and used wherever the pipeline reasons about "what had committed when" without a round trip.
 */
export interface PgSnapshot {
  xmin: bigint;
  xmax: bigint;
  /** In-progress transaction ids, ascending. */
  xip: bigint[];
}

const SNAPSHOT_TEXT = /^(\d{1,20}):(\d{1,20}):((?:\d{1,20}(?:,\d{1,20})*)?)$/;

export function parseSnapshot(text: string): PgSnapshot {
  const m = SNAPSHOT_TEXT.exec(text);
  if (!m) throw new Error(`not a pg_snapshot: ${JSON.stringify(text)} (expected xmin:xmax:xip,…)`);
  const xmin = BigInt(m[1]);
  const xmax = BigInt(m[2]);
  const xip = m[3]
    ? m[3]
        .split(',')
        .map(BigInt)
        .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    : [];
  if (xmin > xmax || xip.some((x) => x < xmin || x >= xmax)) throw new Error(`inconsistent pg_snapshot: ${text}`);
  return { xmin, xmax, xip };
}

export function formatSnapshot(s: PgSnapshot): string {
  return `${s.xmin}:${s.xmax}:${s.xip.join(',')}`;
}

/** Would a row written by transaction `txid` be visible in `s` (had it committed)? */
export function visibleIn(s: PgSnapshot, txid: bigint): boolean {
  if (txid < s.xmin) return true;
  if (txid >= s.xmax) return false;
  // xip is sorted: binary search.
  let lo = 0;
  let hi = s.xip.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (s.xip[mid] === txid) return false;
    if (s.xip[mid] < txid) lo = mid + 1;
    else hi = mid - 1;
  }
  return true;
}

/**
 * True when every transaction visible in `older` is visible in `newer` too: `newer` was taken
 * later on the same server (or on a replica that has replayed at least as far). Used to refuse a
 * replica snapshot that is behind what the drain has applied.
 */
export function snapshotCovers(newer: PgSnapshot, older: PgSnapshot): boolean {
  if (newer.xmax < older.xmax) return false;
  // Anything still in progress in `newer` below older.xmax must have been in progress in `older`.
  const olderXip = new Set(older.xip.map(String));
  return newer.xip.every((x) => x >= older.xmax || olderXip.has(String(x)));
}
