/**
 * The outbox rows a chunk read between watermarks becomes at its high watermark (pure): each row
 * read as a refresh (R), the current row as the source has it, except the keys the stream changed
 * meanwhile (capture/watermark-windows.ts); with `deleteAbsent`, a key asked for that the source
 * does not have as a delete (D) of that key. A TRUNCATE of the table meanwhile leaves the chunk out.
 */
import type { StoredChunk as StoredChunkWithToken } from '../outbox/capture-chunks';

/** A stored chunk as its rows are worked out (its token matched its watermark already). */
type StoredChunk = Omit<StoredChunkWithToken, 'token'>;
import type { CapturedRow } from './row-image';
import { isSourceTable, keyColumnsOf, SOURCE_TABLES } from './source-tables';
import { loadKey, rowKey, truncateKey } from './watermark-windows';
import { dayBefore, placedDay } from '../features/definitions';
import { featureUpdatesFrom } from '../features/from-source';

/**
 * The rows a chunk becomes at its high watermark, or null when it must be read again (orders were
 * truncated by a transaction its snapshot did not see: no sum can be corrected for that).
 */
export function rowsOfChunk(
  chunk: StoredChunk,
  at: { excluded: Set<string>; unseenOrders: CapturedRow[] },
): CapturedRow[] | null {
  const tbl = chunk.tbl;
  const excluded = at.excluded;
  if (tbl === 'orders') return loadSetsOfChunk(chunk, at.unseenOrders);
  if (!isSourceTable(tbl)) throw new Error(`chunk ${chunk.id}: table ${tbl} cannot be re-read`);
  if (excluded.has(truncateKey(tbl))) return [];
  const out: CapturedRow[] = [];
  const present = new Set<string>();
  for (const r of chunk.rows) {
    present.add(r.key);
    if (!excluded.has(rowKey(tbl, r.key)))
      out.push({ tbl, op: 'R', key: r.key, image: JSON.stringify(r.image), oldImage: null });
  }
  if (chunk.deleteAbsent && chunk.keys) {
    const cols = SOURCE_TABLES[tbl].keyColumns;
    for (const key of new Set(chunk.keys)) {
      if (present.has(key) || excluded.has(rowKey(tbl, key))) continue;
      const parts = keyColumnsOf(tbl, key);
      if (!parts) continue; // refused before the chunk was read (watermark-read.ts)
      const image = Object.fromEntries(cols.map((c, i) => [c, parts[i]]));
      out.push({ tbl, op: 'D', key, image: JSON.stringify(image), oldImage: null });
    }
  }
  return out;
}

/**
 * A chunk of load sums (orders, keys "fc|yyyymmdd", from the chunk's first day on) as load sets
 * (S) at the high watermark. A sum read in the chunk's snapshot lacks exactly the order changes of
 * the transactions before the high watermark that the snapshot did not see; their deltas are added
 * (an FC's day they alone touched is set too), so each set is the sum as of the high watermark
 * even while orders keep coming (a hot FC is never left out, as excluding its key would).
 */
function loadSetsOfChunk(chunk: StoredChunk, unseenOrders: CapturedRow[]): CapturedRow[] | null {
  const fromDay = chunk.afterKey ?? '';
  const sums = new Map<string, number>();
  for (const r of chunk.rows) sums.set(r.key, Number((r.image as { load?: unknown }).load ?? 0));
  for (const r of unseenOrders) {
    if (r.op === 'T') return null;
    for (const u of deltasOf(r)) {
      if (dayBefore(u.day, fromDay)) continue;
      const key = `${u.fc}|${u.day}`;
      sums.set(key, (sums.get(key) ?? 0) + u.delta);
    }
  }
  // The last set also says the sets are complete from fromDay on (every FC and day they do not
  // name is 0 at the high watermark): once it is applied, after all the others, the drain zeroes
  // the counters it holds that they did not set (features/definitions.ts, fc.loadSet). No order
  // at all: a row with the completeness alone (fc.loadsComplete), which zeroes every counter.
  if (sums.size === 0 && fromDay !== '') {
    const image = JSON.stringify({ complete_from: fromDay });
    return [{ tbl: 'orders' as const, op: 'S' as const, key: `|${fromDay}`, image, oldImage: null }];
  }
  return [...sums].map(([key, load], n) => {
    const cut = key.lastIndexOf('|');
    const set = { fc_id: key.slice(0, cut), day: key.slice(cut + 1), load: Math.max(0, load) };
    const image = JSON.stringify(n === sums.size - 1 && fromDay !== '' ? { ...set, complete_from: fromDay } : set);
    return { tbl: 'orders' as const, op: 'S' as const, key, image, oldImage: null };
  });
}

/** The load deltas of one order change, as the drain computes them (features/from-source.ts). */
function deltasOf(r: CapturedRow): { fc: string; day: string; delta: number }[] {
  try {
    return featureUpdatesFrom({
      id: '1',
      txid: '0',
      tbl: r.tbl,
      op: r.op,
      key: r.key,
      image: r.image === null ? null : JSON.parse(r.image),
      old_image: r.oldImage === null ? null : JSON.parse(r.oldImage),
      created_ms: 0,
    }).flatMap((u) => (u.feature === 'fc.load' ? [{ fc: u.fc, day: u.day, delta: u.delta }] : []));
  } catch {
    return []; // malformed: the drain dead-letters it and counts nothing either
  }
}

/**
 * The FC days an order change touches ("fc|yyyymmdd"): its old and new row's, whatever their
 * status (a change of status moves the load too). Rows placed on no countable day touch none.
 */
export function orderLoadKeys(r: CapturedRow): string[] {
  const keys: string[] = [];
  for (const image of [r.image, r.oldImage]) {
    if (!image) continue;
    try {
      const o = JSON.parse(image) as { fc_id?: unknown; placed_at?: unknown };
      if (typeof o.fc_id !== 'string' || typeof o.placed_at !== 'string') continue;
      const day = placedDay(o.placed_at);
      if (day) keys.push(loadKey(`${o.fc_id}|${day}`));
    } catch {
      // not a timestamp: the drain dead-letters the change; it sums to nothing here
    }
  }
  return keys;
}
