/**
 * Hand-over between the trigger capture (CAPTURE_MODE=trigger: triggers on the shop tables write
 * the outbox in the source's own transaction) and capture from the WAL (CAPTURE_MODE=logical), on a
 * live database, with no change lost or written twice.
 *
 * To the WAL: the slot is created first (every change after it is in the slot). Then one source
 * transaction takes the shop tables in SHARE ROW EXCLUSIVE mode (it waits for the writers in
 * flight, and new ones wait for it), drops the capture triggers and writes a switch marker into
 * the WAL. Every transaction that fired a trigger committed before it; every one after it fired
 * none. Capture drops the rows of every transaction before the marker (the triggers wrote them)
 * and writes everything after it (capture-loop.ts, handOver).
 *
 * Back to the triggers: the same transaction creates the triggers and writes a marker; capture
 * writes everything up to the marker and stops there; then the slot is dropped and the source
 * forgotten.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { withTransaction } from '../db/transaction';
import { forgetCaptureSource, registerCaptureSource, setCaptureSwitch } from '../outbox/capture-progress';
import { runCapture } from './capture-loop';
import { dropSlot, ensureSlot } from './slot';
import type { CaptureSource } from './sources';
import { encodeSwitch, TICK_PREFIX } from './ticks';

async function withSource<T>(source: CaptureSource, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: source.url, application_name: 'fresh-badges-capture-switch' });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** The source's shop tables that carry the trigger capture. */
export async function tablesWithCaptureTriggers(db: pg.ClientBase | pg.Pool, tables: string[]): Promise<string[]> {
  const r = await db.query<{ tbl: string }>(
    `select distinct c.relname as tbl from pg_trigger t join pg_class c on c.oid = t.tgrelid
       join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = 'shop' and t.tgname in ('capture_change', 'capture_truncate') and c.relname = any($1)
      order by 1`,
    [tables],
  );
  return r.rows.map((row) => row.tbl);
}

/** Locks the tables against writers for the rest of the transaction (at most 5 s of waiting). */
async function lockTables(c: pg.ClientBase, tables: string[]): Promise<void> {
  await c.query(`set local lock_timeout = '5s'`);
  await c.query(
    `lock table ${tables.map((t) => `shop.${pg.escapeIdentifier(t)}`).join(', ')} in share row exclusive mode`,
  );
}

/**
 * Moves the source from the trigger capture to capture from the WAL. Returns false when it has no
 * capture triggers (nothing to hand over).
 */
export async function switchToLogical(source: CaptureSource, pipeline: pg.Pool): Promise<boolean> {
  return withSource(source, async (c) => {
    const tables = await tablesWithCaptureTriggers(c, source.tables);
    if (!tables.length) return false;
    await ensureSlot(c, source.slot);
    await registerCaptureSource(pipeline, source.name, source.slot);
    const id = randomUUID();
    await setCaptureSwitch(pipeline, source.name, id);
    await withTransaction(c, async (tx) => {
      await lockTables(tx, source.tables);
      for (const t of tables)
        await tx.query(
          `drop trigger if exists capture_change on shop.${pg.escapeIdentifier(t)};
           drop trigger if exists capture_truncate on shop.${pg.escapeIdentifier(t)}`,
        );
      await tx.query(`select pg_logical_emit_message(true, $1, $2)`, [TICK_PREFIX, encodeSwitch(id, 'logical')]);
    });
    return true;
  });
}

/**
 * Moves the source back to the trigger capture (the pipeline database holds its tables). No
 * capture of it may be running (stop the capture workflows first): this one writes what is left
 * up to the marker, then drops the slot.
 */
export async function switchToTrigger(source: CaptureSource, pipeline: pg.Pool): Promise<void> {
  const id = randomUUID();
  await withSource(source, (c) =>
    withTransaction(c, async (tx) => {
      await lockTables(tx, source.tables);
      for (const t of source.tables) {
        const table = `shop.${pg.escapeIdentifier(t)}`;
        await tx.query(
          `drop trigger if exists capture_change on ${table};
           drop trigger if exists capture_truncate on ${table};
           create trigger capture_change after insert or update or delete on ${table}
             for each row execute function pipeline.${pg.escapeIdentifier(`capture_${t}`)}();
           create trigger capture_truncate after truncate on ${table}
             for each statement execute function pipeline.capture_truncate()`,
        );
      }
      await tx.query(`select pg_logical_emit_message(true, $1, $2)`, [TICK_PREFIX, encodeSwitch(id, 'trigger')]);
    }),
  );
  for (let attempt = 0; ; attempt++) {
    const p = await runCapture({ source, pipeline, tickMs: 100, budgetMs: 30_000 });
    if (p.handedBack) break;
    if (attempt >= 10) throw new Error(`capture of ${source.name} did not reach its hand-back marker`);
  }
  await withSource(source, (c) => dropSlot(c, source.slot));
  await forgetCaptureSource(pipeline, source.name);
}
