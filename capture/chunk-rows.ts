/**
 * The outbox rows a chunk read between watermarks becomes at its high watermark (pure): each row
 * read as a refresh (R), the current row as the source has it, except the keys the stream changed
 * meanwhile (capture/watermark-windows.ts); with `deleteAbsent`, a key asked for that the source
 * does not have as a delete (D) of that key. A TRUNCATE of the table meanwhile leaves the chunk out.
 */
import type { StoredChunk } from '../outbox/capture-chunks';
import type { CapturedRow } from './row-image';
import { isSourceTable, SOURCE_TABLES } from './source-tables';
import { rowKey, truncateKey } from './watermark-windows';

export function rowsOfChunk(chunk: StoredChunk, excluded: Set<string>): CapturedRow[] {
  const tbl = chunk.tbl;
  if (!isSourceTable(tbl) || tbl === 'orders') throw new Error(`chunk ${chunk.id}: table ${tbl} cannot be re-read`);
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
      const parts = key.split('|');
      const image = Object.fromEntries(cols.map((c, i) => [c, parts[i] ?? '']));
      out.push({ tbl, op: 'D', key, image: JSON.stringify(image), oldImage: null });
    }
  }
  return out;
}
