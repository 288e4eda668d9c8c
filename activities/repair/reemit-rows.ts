/**
 * Repairs through the outbox: re-emits source rows as refresh (R) changes, so the drain applies
 * their current state like any other change, ordered after every earlier change of the same row
 * (the argument is the one in activities/lifecycle/refresh-sku.ts: the row is read FOR SHARE in
 * the statement that inserts its outbox row, so a writer before us has a lower outbox id and a
 * writer after us a higher one).
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

export const REEMIT_TABLES = ['skus', 'inventory', 'fulfillment_centers', 'region_fc'] as const;
export type ReemitTable = (typeof REEMIT_TABLES)[number];

export interface SourceRowRef {
  tbl: ReemitTable;
  /** The outbox key: sku, "sku|fc", fc or "region|fc". */
  key: string;
}

const TABLES: Record<ReemitTable, { cols: [string] | [string, string] }> = {
  skus: { cols: ['sku_id'] },
  inventory: { cols: ['sku_id', 'fc_id'] },
  fulfillment_centers: { cols: ['fc_id'] },
  region_fc: { cols: ['region', 'fc_id'] },
};

export const isReemitTable = (tbl: string | null): tbl is ReemitTable => (REEMIT_TABLES as readonly string[]).includes(tbl ?? '');

export async function reemitSourceRows(
  pool: pg.Pool,
  refs: SourceRowRef[],
  opts: { deleteAbsent?: boolean; lockTimeoutMs?: number } = {},
): Promise<{ refreshed: number; deleted: number }> {
  const out = { refreshed: 0, deleted: 0 };
  const byTable = new Map<ReemitTable, string[][]>();
  for (const ref of refs) {
    const parts = ref.key.split('|');
    if (parts.length !== TABLES[ref.tbl].cols.length) throw new Error(`re-emit: key ${JSON.stringify(ref.key)} does not fit shop.${ref.tbl}`);
    byTable.set(ref.tbl, [...(byTable.get(ref.tbl) ?? []), parts]);
  }
  if (byTable.size === 0) return out;
  const client = await pool.connect();
  try {
    await client.query('begin');
    await client.query(`select set_config('lock_timeout', $1, true)`, [`${opts.lockTimeoutMs ?? 2_000}ms`]);
    for (const [tbl, keys] of byTable) {
      const { cols } = TABLES[tbl];
      // The keys as columns k0 (, k1) of an unnest; the outbox key joins them with '|'.
      const params = cols.map((_, i) => keys.map((k) => k[i]));
      const unnest = `unnest(${cols.map((_, i) => `$${i + 1}::text[]`).join(', ')}) as k(${cols.map((_, i) => `k${i}`).join(', ')})`;
      const match = cols.map((c, i) => `t.${c} = k.k${i}`).join(' and ');
      const keyExpr = (alias: string, names: string[]) => names.map((n) => `${alias}.${n}`).join(` || '|' || `);
      if (opts.deleteAbsent) await client.query(`lock table shop.${tbl} in share mode`);
      const refreshed = await client.query(
        `insert into pipeline.outbox (tbl, op, key, image)
         select '${tbl}', 'R', ${keyExpr('t', cols)}, to_json(t)
           from (select t.* from shop.${tbl} t where exists (select 1 from ${unnest} where ${match})
                  order by ${cols.map((c) => `t.${c}`).join(', ')} ${opts.deleteAbsent ? '' : 'for share'}) t`,
        params,
      );
      out.refreshed += refreshed.rowCount ?? 0;
      if (opts.deleteAbsent) {
        const image = `json_build_object(${cols.map((c, i) => `'${c}', k.k${i}`).join(', ')})`;
        const deleted = await client.query(
          `insert into pipeline.outbox (tbl, op, key, image)
           select distinct '${tbl}', 'D', ${keyExpr('k', cols.map((_, i) => `k${i}`))}, ${image}::jsonb
             from ${unnest} where not exists (select 1 from shop.${tbl} t where ${match})`,
          params,
        );
        out.deleted += deleted.rowCount ?? 0;
      }
    }
    await client.query('commit');
    return out;
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
