/**
 * Re-reading source rows into the outbox (verify's repairs, a fenced dead letter or replayed change,
 * a SKU's rebuild), by whichever capture the install runs:
 *  - trigger: the SECURITY DEFINER functions of migration 007 read the rows FOR SHARE and insert
 *    their outbox rows in one statement (activities/repair/reemit-rows.ts);
 *  - logical: a chunk read between watermarks in the source's WAL (capture/watermark-read.ts),
 *    from the source's replica when one is set; nothing is written into the source.
 * Either way the drain applies them in order with every other change, and an older image never wins.
 */
import type pg from 'pg';
import { reemitSourceRows, type ReemitTable, type SourceRowRef } from '../activities/repair/reemit-rows';
import type { Config } from '../config';
import { withTransaction } from '../db/transaction';
import { captureSources, type CaptureSource } from './sources';
import {
  awaitChunk,
  handChunkRead,
  readThroughWatermarks,
  type ChunkRead,
  type ChunkWait,
  type HandedChunk,
} from './watermark-read';

export interface SourceRows {
  /**
   * Re-reads the rows (a key the source lacks becomes a delete with `deleteAbsent`). The wait
   * options matter under capture from the WAL only, where the capture writes what was read.
   */
  refresh(
    refs: SourceRowRef[],
    opts?: { deleteAbsent?: boolean } & ChunkWait,
  ): Promise<{ refreshed: number; deleted: number }>;
  /** Re-reads one SKU's skus row and all its inventory rows. */
  refreshSku(sku: string, opts?: SkuReread): Promise<{ rows: number }>;
}

/**
 * How a SKU's re-read waits for the capture (logical only): as long as `waitMs`, then
 * ChunkNotWrittenYetError; a retry passes the chunks the failed call handed over (`handed`), and
 * waits on them again instead of reading the rows again, so a rebuild behind a lagging capture
 * finishes once the capture reaches them.
 */
export interface SkuReread extends ChunkWait {
  handed?: HandedChunk[];
  /** Told the chunks once they are handed to the capture, before the wait. */
  onHanded?: (chunks: HandedChunk[]) => void;
}

/** How long the trigger capture's SKU rebuild waits for a row lock before it fails (and is retried). */
export const REFRESH_LOCK_TIMEOUT_MS = 2_000;

/** A SKU's re-read, read again when the capture abandoned it, at most this often per call. */
const REREAD_ATTEMPTS = 3;

export function sourceRowsFor(config: Config, pipeline: pg.Pool): SourceRows {
  return config.CAPTURE_MODE === 'logical' ? logicalSourceRows(config, pipeline) : triggerSourceRows(pipeline);
}

export function triggerSourceRows(pipeline: pg.Pool): SourceRows {
  return {
    refresh: (refs, opts) => reemitSourceRows(pipeline, refs, opts),
    async refreshSku(sku) {
      // pipeline.refresh_sku (migration 007): the skus row and every inventory row of the SKU read
      // FOR SHARE in the statements that insert their outbox rows. A writer that changed a row
      // before has committed, so its value is read and its outbox id is lower; one after waits for
      // this commit, so its id is higher: per row the versions stay in true change order.
      // A lock wait is bounded, as the re-emit's is: a source transaction left open on one of the
      // rows would otherwise keep the statement, and its pooled connection, past the activity's
      // timeout, and each retry would park another, until the drain found no connection.
      return withTransaction(pipeline, async (client) => {
        await client.query(`select set_config('lock_timeout', $1, true)`, [`${REFRESH_LOCK_TIMEOUT_MS}ms`]);
        const r = await client.query('select pipeline.refresh_sku($1)::int as n', [sku]);
        return { rows: r.rows[0].n };
      });
    },
  };
}

function logicalSourceRows(config: Config, pipeline: pg.Pool): SourceRows {
  const sources = captureSources(config);
  const sourceOf = (tbl: string): CaptureSource => {
    const s = sources.find((x) => (x.tables as string[]).includes(tbl));
    if (!s) throw new Error(`no capture source holds shop.${tbl}`);
    return s;
  };
  const opts = (tbl: string) => ({ source: sourceOf(tbl), pipeline });
  return {
    async refresh(refs, o = {}) {
      const byTable = new Map<ReemitTable, string[]>();
      for (const r of refs) byTable.set(r.tbl, [...(byTable.get(r.tbl) ?? []), r.key]);
      let refreshed = 0;
      let deleted = 0;
      for (const [tbl, keys] of byTable) {
        const w = await readThroughWatermarks({ ...o, ...opts(tbl) }, { tbl, keys, deleteAbsent: o.deleteAbsent });
        refreshed += w.read;
        if (o.deleteAbsent) deleted += new Set(keys).size - w.read;
      }
      return { refreshed, deleted };
    },
    async refreshSku(sku, o = {}) {
      // both read and handed over before the wait: the capture writes them in one go
      const reads: ChunkRead[] = [
        { tbl: 'skus', keys: [sku] },
        { tbl: 'inventory', ofSku: sku },
      ];
      let handed = o.handed?.length === reads.length ? o.handed : null;
      for (let attempt = 1; ; attempt++) {
        if (!handed) {
          handed = [];
          for (const r of reads) handed.push(await handChunkRead(opts(r.tbl), r));
          o.onHanded?.(handed);
        }
        const chunks = handed;
        const written = await Promise.all(chunks.map((h, i) => awaitChunk(opts(reads[i]!.tbl), h, o)));
        if (written.every((n) => n !== null)) return { rows: written.reduce((a, n) => a + n, 0) };
        // abandoned or skipped (the capture restarted, or its slot was lost): read again
        if (attempt >= REREAD_ATTEMPTS)
          throw new Error(`the capture abandoned SKU ${sku}'s re-read ${REREAD_ATTEMPTS} times (it keeps restarting)`);
        handed = null;
      }
    },
  };
}
