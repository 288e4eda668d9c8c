/**
 * Capture sessions kept open between capture activities in one worker process (capture-loop.ts says
 * why). A session no run has picked up for IDLE_CLOSE_MS is closed, so the slot is free for a run
 * that lands on another worker.
 */
import type pg from 'pg';
import { CaptureSession } from './capture-loop';
import type { CaptureSource } from './sources';
import { SlotBusyError } from './replication-stream';

const IDLE_CLOSE_MS = 2_000;

interface Entry {
  session: CaptureSession;
  busy: boolean;
  idleTimer: NodeJS.Timeout | null;
}

const sessions = new Map<string, Entry>();
const keyOf = (s: CaptureSource) => `${s.slot}@${s.url}`;

/**
 * Runs `fn` with this process's session of the source, opening one when there is none. `signal`
 * ends an open that waits (a slot's creation behind a transaction held open on the source): its
 * reason is thrown and nothing is kept (CaptureSession.open).
 */
export async function withCaptureSession<T>(
  source: CaptureSource,
  pipeline: pg.Pool,
  fn: (session: CaptureSession) => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  const key = keyOf(source);
  let entry = sessions.get(key);
  if (entry?.busy) throw new SlotBusyError(`a capture of ${source.name} is already running in this process`);
  if (entry && !entry.session.healthy) {
    void forget(key, entry);
    entry = undefined;
  }
  if (!entry) {
    entry = { session: await CaptureSession.open(source, pipeline, signal), busy: false, idleTimer: null };
    sessions.set(key, entry);
  }
  if (entry.idleTimer) clearTimeout(entry.idleTimer);
  entry.busy = true;
  try {
    const result = await fn(entry.session);
    entry.busy = false;
    // spent (its stream broke, or the source's history diverged): closed now, so the next run's
    // new session finds the slot free
    if (!entry.session.healthy) {
      await forget(key, entry);
      return result;
    }
    const kept = entry;
    kept.idleTimer = setTimeout(() => void forget(key, kept), IDLE_CLOSE_MS);
    kept.idleTimer.unref();
    return result;
  } catch (err) {
    void forget(key, entry);
    throw err;
  }
}

function forget(key: string, entry: Entry): Promise<void> {
  if (entry.idleTimer) clearTimeout(entry.idleTimer);
  if (sessions.get(key) === entry) sessions.delete(key);
  return entry.session.close().catch(() => {});
}

/** Closes every session (worker shutdown). */
export async function closeCaptureSessions(): Promise<void> {
  const all = [...sessions.entries()];
  sessions.clear();
  await Promise.all(
    all.map(([, e]) => {
      if (e.idleTimer) clearTimeout(e.idleTimer);
      return e.session.close();
    }),
  );
}
