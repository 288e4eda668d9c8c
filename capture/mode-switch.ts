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
 * forgotten. A hand-back cut short after the triggers' commit is finished without capturing, and
 * no capture session starts on a source whose tables carry the triggers unless a hand-over to the
 * WAL is under way (capture-loop.ts, readySlot): either would write the triggers' changes twice.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { SlotBusyError } from './replication-stream';
import { withTransaction } from '../db/transaction';
import {
  fenceCaptureSessions,
  forgetCaptureSource,
  readCaptureProgress,
  registerCaptureSource,
  releaseCaptureSource,
  setCaptureSwitch,
} from '../outbox/capture-progress';
import { parseLsn } from './pgoutput';
import { runCapture } from './capture-loop';
import { dropSlot, ensureSlot } from './slot';
import type { CaptureSource } from './sources';
import { tablesWithCaptureTriggers } from './capture-triggers';
import { encodeSwitch, TICK_PREFIX } from './ticks';

async function withSource<T>(source: CaptureSource, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: source.url, application_name: 'fresh-badges-capture-switch' });
  c.on('error', () => {}); // a lost connection fails the query in flight; unheard, it would end the worker
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
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
    // Registered before the slot exists: a hand-over that stops in between leaves a row, by which
    // npm start with CAPTURE_MODE=trigger finds the slot to drop (a slot nothing names holds WAL).
    await registerCaptureSource(pipeline, source.name, source.slot);
    await ensureSlot(c, source.slot);
    const id = randomUUID();
    await setCaptureSwitch(pipeline, source.name, id);
    await withTransaction(c, async (tx) => {
      await lockTables(tx, source.tables);
      for (const t of tables)
        await tx.query(
          `drop trigger if exists capture_change on shop.${pg.escapeIdentifier(t)};
           drop trigger if exists capture_truncate on shop.${pg.escapeIdentifier(t)}`,
        );
      await tx.query(`select pg_logical_emit_message(true, $1, $2)`, [
        TICK_PREFIX,
        encodeSwitch(id, 'logical', source.slot),
      ]);
    });
    return true;
  });
}

/**
 * Moves the source back to the trigger capture (the pipeline database holds its tables). No
 * capture of it may be running (stop the capture workflows first): this one writes what is left
 * up to the marker, then drops the slot.
 */
export async function switchToTrigger(
  source: CaptureSource,
  pipeline: pg.Pool,
  hooks: HandBackHooks = {},
): Promise<void> {
  const withTriggers = await withSource(source, (c) => tablesWithCaptureTriggers(c, source.tables));
  // The triggers are created in the transaction that waited for the capture to write everything
  // up to its marker, so tables that carry them are a hand-back that got that far and stopped
  // (a crash, the slot's drop failing) before the source was forgotten. The triggers have written
  // every change since: a capture now would write them again (each order's load counted twice).
  if (withTriggers.length < source.tables.length) await handBack(source, pipeline, withTriggers, hooks);
  await releaseCaptureSource(pipeline, source.name);
  await withSource(source, (c) => dropSlotOnceLetGo(c, source.slot));
  await forgetCaptureSource(pipeline, source.name);
}

/**
 * Drops the slot, waiting up to 10 s for a session still streaming it to let go: one that took
 * the source as the triggers committed stops as soon as it finds them (capture-loop.ts), and its
 * walsender ends a moment after.
 */
async function dropSlotOnceLetGo(c: pg.Client, slot: string): Promise<void> {
  for (const deadline = Date.now() + 10_000; ;) {
    try {
      await dropSlot(c, slot);
      return;
    } catch (err) {
      if (!/is active for PID/.test((err as Error).message) || Date.now() > deadline) throw err;
      await sleep(200);
    }
  }
}

/** For tests: a moment of the hand-back to race against. */
export interface HandBackHooks {
  /** The triggers are created and capture sessions fenced; the source transaction is about to commit. */
  beforeTriggersCommit?: () => Promise<void>;
}

/** The capture up to a marker, then the triggers, the tables locked in between (switchToTrigger). */
async function handBack(
  source: CaptureSource,
  pipeline: pg.Pool,
  withTriggers: string[],
  hooks: HandBackHooks,
): Promise<void> {
  if (withTriggers.length)
    throw new Error(
      `capture: ${source.name}: only ${withTriggers.join(', ')} of its tables carry the capture triggers (the hand-back creates them on every table at once, so someone changed them by hand): drop them (drop trigger capture_change / capture_truncate), then run npm start again`,
    );
  // Caught up first, so the tables stay locked below only for the last moment's changes.
  await captureUntilMarker(source, pipeline, null);
  const id = randomUUID();
  // The writers wait (the tables are locked) from before the marker until the triggers exist and
  // the capture has written everything up to the marker: a trigger's outbox id is handed out at
  // its source transaction's time, so no trigger may write before the capture has written every
  // earlier change (an earlier change with a later id would win over the newer one).
  let claims: pg.PoolClient | undefined;
  try {
    await withSource(source, (c) =>
      withTransaction(c, async (tx) => {
        await lockTables(tx, source.tables);
        const marker = await withSource(source, async (m) =>
          parseLsn(
            (
              await m.query<{ lsn: string }>(`select pg_logical_emit_message(true, $1, $2)::text as lsn`, [
                TICK_PREFIX,
                encodeSwitch(id, 'trigger', source.slot),
              ])
            ).rows[0]!.lsn,
          ),
        );
        await captureUntilMarker(source, pipeline, { id, lsn: marker });
        await tx.query(captureTriggersSql(source.tables));
        // The moment before the triggers commit: a capture session that took the source meanwhile
        // (one the hand-back could not stop) writes nothing the triggers write from now on. On
        // its own, not only in the transaction below: that one's commit could fail after the
        // triggers' (the pipeline database lost), and this fence still stands then.
        await fenceCaptureSessions(pipeline, source.name);
        // Fenced again, in a transaction that holds the source's row until the triggers have
        // committed: a session that took the source since the line above is fenced by it (its
        // writes lock the row and check the generation), and one that takes it from now on waits
        // (a claim updates the row), then finds the triggers (capture-loop.ts, refuseTriggerCaptured
        // after takeSource) and stops.
        claims = await pipeline.connect();
        await claims.query('begin');
        await fenceCaptureSessions(claims, source.name);
        await hooks.beforeTriggersCommit?.();
      }),
    );
    await claims!.query('commit');
  } finally {
    if (claims) {
      await claims.query('rollback').catch(() => {}); // after the commit above, a no-op
      claims.release();
    }
  }
}

/** How long the hand-back keeps the source's tables locked waiting for the capture to reach its marker. */
const MARKER_WAIT_MS = 60_000;

/**
 * Runs a capture of the source until it has written the hand-back marker (null: until it has
 * caught up with now). The last capture run's session may hold the slot a moment longer
 * (capture/session-registry.ts): a busy slot is tried again. A marker written by another session
 * (a capture chain not stopped, which reached it first and stopped there) counts once the
 * recorded position is past it; the wait for a marker ends after MARKER_WAIT_MS, which rolls the
 * hand-back back (its transaction locks the source's writers out meanwhile).
 */
async function captureUntilMarker(
  source: CaptureSource,
  pipeline: pg.Pool,
  marker: { id: string; lsn: bigint } | null,
): Promise<void> {
  const id = marker?.id ?? null;
  // "Now" by the pipeline database's clock, the one ticks carry (a worker's clock may be off from it).
  const since =
    id === null
      ? Number((await pipeline.query(`select extract(epoch from clock_timestamp()) * 1000 as ms`)).rows[0].ms)
      : 0;
  const deadline = marker ? Date.now() + MARKER_WAIT_MS : Infinity;
  const written = async () =>
    marker !== null && ((await readCaptureProgress(pipeline, source.name))?.lsn ?? 0n) >= marker.lsn;
  for (let attempt = 0; attempt < 60 && Date.now() < deadline; attempt++) {
    if (await written()) return;
    const abort = new AbortController();
    const p = await runCapture({
      source,
      pipeline,
      tickMs: 20,
      budgetMs: marker ? Math.max(1_000, Math.min(30_000, deadline - Date.now())) : 30_000,
      signal: abort.signal,
      onProgress: (x) => {
        if (id === null && x.coveredAtMs !== null && x.coveredAtMs > since) abort.abort();
      },
    }).catch((err: Error) => {
      if (err instanceof SlotBusyError) return null;
      throw err;
    });
    if (p && (id === null ? (p.coveredAtMs ?? 0) > since : p.handedBack)) return;
    if (!p) await sleep(500);
  }
  if (await written()) return;
  throw new Error(
    marker
      ? `capture of ${source.name} did not reach its hand-back marker within ${MARKER_WAIT_MS / 1000} s: the hand-back is rolled back (no trigger created; nothing captures the source until npm start runs again, and reads stay stale); is a capture of it still running elsewhere (npm run ops -- status)? Run npm start again`
      : `capture of ${source.name} did not catch up before its hand-back`,
  );
}

/** (Re)creates the trigger capture on the tables (the functions are migration 004's). */
export function captureTriggersSql(tables: string[]): string {
  return tables
    .map((t) => {
      const table = `shop.${pg.escapeIdentifier(t)}`;
      return `drop trigger if exists capture_change on ${table};
        drop trigger if exists capture_truncate on ${table};
        create trigger capture_change after insert or update or delete on ${table}
          for each row execute function pipeline.${pg.escapeIdentifier(`capture_${t}`)}();
        create trigger capture_truncate after truncate on ${table}
          for each statement execute function pipeline.capture_truncate();`;
    })
    .join('\n');
}
