/** Which of a source's tables still carry the trigger capture (capture/mode-switch.ts creates and drops them). */
import type pg from 'pg';

/** The source's shop tables that carry the trigger capture. */
export async function tablesWithCaptureTriggers(
  db: pg.ClientBase | pg.Pool,
  tables: string[],
  /** Only triggers that fire (not disabled with ALTER TABLE … DISABLE TRIGGER). */
  opts: { enabledOnly?: boolean } = {},
): Promise<string[]> {
  const r = await db.query<{ tbl: string }>(
    `select distinct c.relname as tbl from pg_trigger t join pg_class c on c.oid = t.tgrelid
       join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = 'shop' and t.tgname in ('capture_change', 'capture_truncate') and c.relname = any($1)
        and (not $2 or t.tgenabled <> 'D')
      order by 1`,
    [tables, opts.enabledOnly === true],
  );
  return r.rows.map((row) => row.tbl);
}
