/**
 * What a drain chunk delivered, recorded with the store position it writes (FIELD.appliedChunk):
 * "<batch>:<txid>:<id> of the position before it/<rows>/<sum of outbox ids>/<sum of write times>".
 * The drain checks a store found ahead of its cursor against it (activities/drain/adopted-chunk.ts).
 */
import type { DeliveryPosition } from './store-position';

export const positionText = (p: DeliveryPosition) => `${p.batch}:${p.txid}:${p.id}`;

export type ChunkRow = { id: string; created_ms: number };

/** Sums of the rows' outbox ids and write times (microseconds): "<ids>/<times>". */
export function sumsOfChunk(rows: readonly ChunkRow[]): string {
  let ids = 0n;
  let times = 0n;
  for (const r of rows) {
    ids += BigInt(r.id);
    times += BigInt(Math.round(r.created_ms * 1000));
  }
  return `${ids}/${times}`;
}

/** What a chunk delivered, recorded with the store's position (FIELD.appliedChunk). */
export function chunkPrint(before: DeliveryPosition, rows: readonly ChunkRow[]): string {
  return `${positionText(before)}/${rows.length}/${sumsOfChunk(rows)}`;
}

/** The parts of a record (null: not one this version writes). */
export function parseChunkPrint(print: string): { before: string; rows: number; sums: string } | null {
  const m = /^(\d+:\d+:\d+)\/(\d+)\/(\d+\/\d+)$/.exec(print);
  return m ? { before: m[1]!, rows: Number(m[2]), sums: m[3]! } : null;
}

/** A record of a chunk applied at `at` without moving the position: a TRUNCATE batch's last one. */
export function appliedInPlace(print: string | null | undefined, at: DeliveryPosition): boolean {
  const p = print ? parseChunkPrint(print) : null;
  return !!p && p.rows > 0 && p.before === positionText(at);
}
