/**
 * How many rows a backfill will read from each source table, for its progress (`ops backfill`'s
 * bar and the workflow's `progress` query).
 *
 * The planner's statistics cost nothing, and are scaled as the planner scales them: rows per page
 * when last analysed (reltuples / relpages) times the pages the table has now. But a table never
 * analysed has reltuples = -1 (PostgreSQL 14+), and this install runs with autovacuum off, so on
 * a fresh install every estimate was 0 and the bar showed 100% from its first frame. When the
 * statistics cannot say (never analysed, or analysed while empty and holding pages now), the
 * table is counted (a big one from a 1 % page sample): a read, on the database the backfill reads.
 * Never ANALYZE: the pipeline writes nothing into a source database.
 */
import type pg from 'pg';

type Queryable = pg.Pool | pg.ClientBase;

/** What pg_class says of a table, and how many pages it has now. */
export interface TableStats {
  reltuples: number;
  relpages: number;
  pagesNow: number;
}

/** The planner's estimate, or null when its statistics cannot say and the table must be counted. */
export function plannerEstimate(s: TableStats): number | null {
  if (s.pagesNow === 0) return 0; // no page, no row
  if (s.reltuples < 0) return null; // never analysed
  if (s.reltuples === 0 || s.relpages === 0) return null; // analysed while empty: no density to scale
  return Math.round((s.reltuples / s.relpages) * s.pagesNow);
}

/** Rows per table of schema shop (a table that does not exist there counts 0). */
export async function estimateTableRows<T extends string>(
  db: Queryable,
  tables: readonly T[],
): Promise<Record<T, number>> {
  const r = await db.query<{ relname: T; reltuples: number; relpages: number; pages_now: string }>(
    `select c.relname, c.reltuples::float8 as reltuples, c.relpages,
            (pg_relation_size(c.oid) / current_setting('block_size')::int)::text as pages_now
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = 'shop' and c.relkind = 'r' and c.relname = any($1)`,
    [tables],
  );
  const out = Object.fromEntries(tables.map((t) => [t, 0])) as Record<T, number>;
  for (const row of r.rows) {
    const estimate = plannerEstimate({
      reltuples: row.reltuples,
      relpages: row.relpages,
      pagesNow: Number(row.pages_now),
    });
    out[row.relname] = estimate ?? (await countRows(db, row.relname, Number(row.pages_now)));
  }
  return out;
}

/** Up to this many pages (80 MB) a table is counted row by row; a bigger one from a 1 % sample. */
const EXACT_COUNT_MAX_PAGES = 10_000;

/**
 * The table's rows without statistics. A big table is estimated from a sample of 1 % of its pages
 * (TABLESAMPLE SYSTEM reads only those), so the plan activity stays short however big it is.
 */
async function countRows(db: Queryable, table: string, pages: number): Promise<number> {
  const sampled = pages > EXACT_COUNT_MAX_PAGES;
  const r = await db.query<{ n: string }>(
    `select count(*)::text as n from shop.${quoteIdent(table)}${sampled ? ' tablesample system (1)' : ''}`,
  );
  return sampled ? Number(r.rows[0].n) * 100 : Number(r.rows[0].n);
}

const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;
