/**
 * Ticks: how capture knows up to when a source is in the outbox, whether the source is busy or idle.
 *
 * Every CAPTURE_TICK_MS the capture writes a transactional logical message into the source's WAL
 * (`pg_logical_emit_message`: no table, no row; a few dozen bytes of WAL) holding the time t just
 * before it asked, by the pipeline database's clock (the one `asOf` is measured in). The message commits in a transaction of its own, so it reaches the stream in
 * commit order. A source transaction whose commit was visible before t committed before the tick's
 * transaction began, so its commit record precedes the tick's: by the time the tick's transaction
 * is written into the outbox, every source change committed before t is there too. The outbox
 * transaction that writes the tick records t as the source's `covered_at`, and the drain's `asOf`
 * never passes it (outbox/capture-progress.ts). A source that is down, or whose capture is paused,
 * stops producing ticks that arrive, so reads go stale by themselves; an open transaction on the
 * source delays nothing, because it is not in the stream until it commits.
 *
 * Each tick names its writer (the capture's slot), and a capture counts only its own for coverage:
 * another pipeline reading the same source server writes ticks into the same WAL, stamped by its
 * own database's clock, which may run ahead of ours. (Their snapshots still move the horizon of
 * chunk reads, capture/watermark-windows.ts: that argument uses the source's order alone.) Ticks
 * written before the writer was added (an older worker, during an upgrade) are not counted.
 */
import type pg from 'pg';
import { PUBLICATION_FINGERPRINT_SQL, TABLES_FINGERPRINT_SQL, UNPUBLISHED_TABLES_SQL } from './slot';

export const TICK_PREFIX = 'fresh-badges';

export interface Tick {
  /** Milliseconds since the epoch by the pipeline database's clock, taken just before the tick was written (older ticks: the source's clock). */
  at: number;
  /** The capture that wrote it (its slot name); absent in ticks written before it was added. */
  by?: string;
  /**
   * The source's snapshot as the tick was written (pg_snapshot text): what had committed visibly by
   * then, carried in the message itself so it arrives with the tick (capture/watermark-windows.ts,
   * the horizon). Absent in ticks written before it was added.
   */
  snapshot?: string;
  /**
   * The fingerprint of the capture's publication as the tick was written (capture/slot.ts,
   * PUBLICATION_FINGERPRINT_SQL): a tick whose fingerprint is not the one before it says the
   * publication changed between the two. Absent in ticks written before it was added, and in ticks
   * written with no publication to check (benchmarks, tests).
   */
  publication?: string;
  /** The fingerprint of the source's tables' identities as the tick was written (TABLES_FINGERPRINT_SQL), compared the same way. */
  tables?: string;
}

/**
 * The pipeline's messages in a source's WAL: ticks, and the marker of a hand-over between the
 * trigger capture and capture from the WAL (capture/mode-switch.ts), written in the transaction
 * that drops or creates the triggers.
 */
export type PipelineMessage =
  | ({ kind: 'tick' } & Tick)
  /** `by`: the capture handing over (its slot); absent in markers written before it was added. */
  | { kind: 'switch'; id: string; to: 'logical' | 'trigger'; by?: string }
  /** The low or high watermark of a chunk read from the source (capture/watermark-read.ts). */
  | {
      kind: 'watermark';
      chunk: string;
      edge: 'low' | 'high';
      /**
       * The capture source the chunk belongs to. Two source settings can name one database (two
       * slots, each stream holding both sources' watermarks): a capture writes only its own
       * chunks. Absent in watermarks written before it was added: taken by whichever capture.
       */
      source?: string;
      /**
       * The capture whose chunk it is (its slot name, as a tick's `by`). Another pipeline reading
       * the same source database writes watermarks into the same WAL, numbered by its own chunk
       * table: a capture takes only its own. Absent in watermarks written before it was added.
       */
      by?: string;
      /** The chunk's token (migration 023): absent in watermarks written before it, which match by id alone. */
      token?: string;
    };

export function encodeWatermark(
  edge: 'low' | 'high',
  chunk: string,
  source: string,
  by: string,
  token?: string,
): string {
  const tok = token === undefined ? {} : { tok: token };
  return JSON.stringify(
    edge === 'low' ? { lw: chunk, src: source, by, ...tok } : { hw: chunk, src: source, by, ...tok },
  );
}

/** `by`: the capture handing over (its slot); another pipeline's marker in the same WAL is not ours. */
export function encodeSwitch(id: string, to: 'logical' | 'trigger', by: string): string {
  return JSON.stringify({ switch: id, to, by });
}

/** The pipeline message in a message of our prefix, or null for anything else (ignored). */
export function decodePipelineMessage(content: Buffer): PipelineMessage | null {
  try {
    const v = JSON.parse(content.toString('utf8')) as {
      tick?: unknown;
      switch?: unknown;
      to?: unknown;
      lw?: unknown;
      hw?: unknown;
      src?: unknown;
      snap?: unknown;
      by?: unknown;
      pub?: unknown;
      tbl?: unknown;
      tok?: unknown;
    };
    const source = {
      ...(typeof v.src === 'string' ? { source: v.src } : {}),
      ...(typeof v.by === 'string' ? { by: v.by } : {}),
    };
    if (typeof v.tick === 'number' && Number.isFinite(v.tick))
      return {
        kind: 'tick',
        at: v.tick,
        ...(typeof v.snap === 'string' ? { snapshot: v.snap } : {}),
        ...(typeof v.by === 'string' ? { by: v.by } : {}),
        ...(typeof v.pub === 'string' ? { publication: v.pub } : {}),
        ...(typeof v.tbl === 'string' ? { tables: v.tbl } : {}),
      };
    const token = typeof v.tok === 'string' ? { token: v.tok } : {};
    if (typeof v.lw === 'string') return { kind: 'watermark', chunk: v.lw, edge: 'low', ...source, ...token };
    if (typeof v.hw === 'string') return { kind: 'watermark', chunk: v.hw, edge: 'high', ...source, ...token };
    if (typeof v.switch === 'string' && (v.to === 'logical' || v.to === 'trigger'))
      return { kind: 'switch', id: v.switch, to: v.to, ...(typeof v.by === 'string' ? { by: v.by } : {}) };
    return null;
  } catch {
    return null;
  }
}

/**
 * Writes one tick into the source's WAL, stamped with `clock`'s time (the pipeline's database) read
 * just before: a source transaction whose commit had been acknowledged by then is visible to the
 * tick's statement, which starts after, so its commit record comes before the tick's. The stamp is
 * taken on the pipeline database, not the source, because `asOf` is compared with that database's
 * clock (outbox/cursor.ts, snapshotAtSql): a source clock running ahead would otherwise make a tick
 * that reaches the outbox late (capture behind a backlog) claim changes it does not cover. `by` names
 * the writer: the capture reading it back counts only its own (see above).
 */
export async function emitTick(
  source: pg.ClientBase | pg.Pool,
  clock: pg.ClientBase | pg.Pool,
  by: string,
  /**
   * The capture's publication and its source's tables: the tick is written only while the
   * publication carries every change of each (UNPUBLISHED_TABLES_SQL), checked in its statement.
   * A tick vouches for every change before it; one written while a table was left out would vouch
   * for changes the stream never sends.
   */
  publication?: { name: string; tables: readonly string[] },
): Promise<Tick & { unpublished?: string[] }> {
  const now = await clock.query<{ at: number }>(`select (extract(epoch from clock_timestamp()) * 1000)::float8 as at`);
  const at = now.rows[0]!.at;
  const fields = `'tick', $2::float8, 'snap', pg_current_snapshot()::text, 'by', $3::text`;
  const message = (more = '') => `pg_logical_emit_message(true, $1, json_build_object(${fields}${more})::text)`;
  if (!publication) {
    await source.query(`select ${message()}`, [TICK_PREFIX, at, by]);
    return { at, by };
  }
  // (the fingerprint read in the statement that finds the publication complete)
  const r = await source.query<{ missing: string[]; fp: string; tfp: string }>(
    `with m as (select ${UNPUBLISHED_TABLES_SQL('$4', '$5')} as missing, ${PUBLICATION_FINGERPRINT_SQL('$4', '$5')} as fp,
                       ${TABLES_FINGERPRINT_SQL('$5')} as tfp)
     select missing, fp, tfp, case when cardinality(missing) = 0 then ${message(", 'pub', fp, 'tbl', tfp")} end from m`,
    [TICK_PREFIX, at, by, publication.name, publication.tables],
  );
  const { missing, fp, tfp } = r.rows[0]!;
  return missing.length ? { at, by, unpublished: missing } : { at, by, publication: fp, tables: tfp };
}
