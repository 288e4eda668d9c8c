/**
 * Repairs through the outbox: re-emits source rows as refresh (R) changes, so the drain applies
 * their current state like any other change, ordered after every earlier change of the same row
 * (the argument is the one of a SKU's rebuild in capture/source-rows.ts: the row is read FOR SHARE in
 * the statement that inserts its outbox row, so a writer before us has a lower outbox id and a
 * writer after us a higher one). The SQL is pipeline.reemit_source_rows (migration 007): a
 * SECURITY DEFINER function, because FOR SHARE and LOCK TABLE need UPDATE on the shop tables,
 * which the worker's role does not have (sql/least-privilege.sql).
 *
 * Used where the store must not be written directly: a retried dead letter or a replayed change
 * older than the deletion fence (store/fence.ts), and the scheduled verify's repairs.
 *
 * `deleteAbsent`: a row the store holds and the source does not is re-emitted as a delete (D).
 * An absent row cannot be locked, so the table is locked in SHARE mode for the statement (writers
 * wait a moment; `lock_timeout` bounds it, and a timeout is an error the caller retries later):
 * with no writer in flight, "absent now" is exact and the delete's id follows every earlier change.
 */
import type pg from 'pg';
import { withTransaction } from '../../db/transaction';

export const REEMIT_TABLES = ['skus', 'inventory', 'fulfillment_centers', 'region_fc'] as const;
export type ReemitTable = (typeof REEMIT_TABLES)[number];

export interface SourceRowRef {
  tbl: ReemitTable;
  /** The outbox key: sku, "sku|fc", fc or "region|fc". */
  key: string;
}

const KEY_PARTS: Record<ReemitTable, number> = { skus: 1, inventory: 2, fulfillment_centers: 1, region_fc: 2 };

export const isReemitTable = (tbl: string | null): tbl is ReemitTable =>
  (REEMIT_TABLES as readonly string[]).includes(tbl ?? '');

/** The work is done by pipeline.reemit_source_rows (migration 007), one call per table. */
export async function reemitSourceRows(
  pool: pg.Pool,
  refs: SourceRowRef[],
  opts: { deleteAbsent?: boolean; lockTimeoutMs?: number } = {},
): Promise<{ refreshed: number; deleted: number }> {
  const out = { refreshed: 0, deleted: 0 };
  const byTable = new Map<ReemitTable, string[]>();
  for (const ref of refs) {
    if (ref.key.split('|').length !== KEY_PARTS[ref.tbl])
      throw new Error(`re-emit: key ${JSON.stringify(ref.key)} does not fit shop.${ref.tbl}`);
    byTable.set(ref.tbl, [...(byTable.get(ref.tbl) ?? []), ref.key]);
  }
  if (byTable.size === 0) return out;
  return withTransaction(pool, async (client) => {
    await client.query(`select set_config('lock_timeout', $1, true)`, [`${opts.lockTimeoutMs ?? 2_000}ms`]);
    for (const [tbl, keys] of byTable) {
      const r = await client.query(
        `select refreshed::int, deleted::int from pipeline.reemit_source_rows($1, $2::text[], $3)`,
        [tbl, keys, !!opts.deleteAbsent],
      );
      out.refreshed += r.rows[0].refreshed;
      out.deleted += r.rows[0].deleted;
    }
    return out;
  });
}
