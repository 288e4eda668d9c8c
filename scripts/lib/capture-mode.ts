/**
 * `npm start`'s part in CAPTURE_MODE (docs/capture.md): with `logical`, each source database is
 * checked for its publication (created by sql/source-setup.sql; on a local database this runs it)
 * and handed over from the trigger capture if its tables still carry the triggers; with `trigger`,
 * a source captured from the WAL until now is handed back (its capture runs are stopped first).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import pg from 'pg';
import { switchToLogical, switchToTrigger } from '../../capture/mode-switch';
import { dropSlot, publicationExists } from '../../capture/slot';
import { captureSources, type CaptureSource } from '../../capture/sources';
import type { Config } from '../../config';
import { redactText } from '../../config/redact';
import { createPool } from '../../db/pool';
import { deleteCaptureSchedules } from './schedules';
import { withClient } from './source-databases';
import { stopChains, type StopReport } from './stop-chains';

const SOURCE_SETUP_SQL = path.resolve(__dirname, '..', '..', 'sql', 'source-setup.sql');

export async function prepareCapture(config: Config, temporal: Client, log = console.log): Promise<void> {
  const pipeline = createPool(config.DATABASE_URL, 2);
  try {
    if (config.CAPTURE_MODE === 'logical') {
      for (const source of captureSources(config)) {
        await ensurePublication(source, log);
        if (await switchToLogical(source, pipeline))
          log(`capture: ${source.name} handed over from the capture triggers to its replication slot ${source.slot}`);
      }
      return;
    }
    const captured = (
      await pipeline.query<{ source: string; slot: string }>(`select source, slot from pipeline.capture_progress`)
    ).rows;
    await dropUnnamedSlots(config, captured, log);
    if (!captured.length) return;
    // No schedule may start a capture during the hand-back or after it (a worker still running
    // CAPTURE_MODE=logical would fire it): the trigger capture has none, so they go now, not with
    // the other schedules after this. Then the running captures are stopped.
    await deleteCaptureSchedules(
      temporal,
      captured.map((row) => row.source),
    );
    // As before, the hand-back goes on; a run not ended (no worker running it, say) is said.
    const { stillRunning } = await stopCaptureRuns(temporal, pipeline);
    if (stillRunning.length)
      log(`capture: ${stillRunning.join(', ')} still running 30 s after the stop signal; handing back anyway`);
    for (const row of captured) {
      const source = captureSources(config).find((s) => s.name === row.source);
      if (!source)
        throw new Error(
          `capture: source ${row.source} is captured from the WAL but not part of this configuration; set CAPTURE_MODE=logical, or drop its slot ${row.slot} and delete it from pipeline.capture_progress`,
        );
      await switchToTrigger(source, pipeline);
      log(`capture: ${source.name} handed back to the capture triggers; slot ${source.slot} dropped`);
    }
  } finally {
    await pipeline.end();
  }
}

/**
 * The slots of this configuration's sources that no captured source names: a hand-over to the WAL
 * stopped after creating its slot (an older version created it before registering the source),
 * left holding the source's WAL for good. Under the trigger capture nothing reads them. One still
 * streaming (a worker of the other mode) is left and said.
 */
async function dropUnnamedSlots(
  config: Config,
  captured: { source: string }[],
  log: (m: string) => void,
): Promise<void> {
  for (const source of captureSources(config)) {
    if (captured.some((row) => row.source === source.name)) continue;
    await withClient(source.url, async (c) => {
      try {
        if (await dropSlot(c, source.slot))
          log(`capture: dropped slot ${source.slot}, left by a hand-over that stopped`);
      } catch (err) {
        log(
          `capture: slot ${source.slot} is left by a hand-over that stopped but could not be dropped (${redactText((err as Error).message)}); drop it when nothing streams it`,
        );
      }
    });
  }
}

/** The source's publication; created from sql/source-setup.sql where this role may (a local database). */
export async function ensurePublication(source: CaptureSource, log: (m: string) => void = () => {}): Promise<void> {
  const c = new pg.Client({ connectionString: source.url });
  await c.connect();
  try {
    if (await publicationExists(c, source.publication)) return;
    try {
      await c.query(fs.readFileSync(SOURCE_SETUP_SQL, 'utf8'));
      log(`capture: ${source.name}: publication ${source.publication} created (sql/source-setup.sql)`);
    } catch (err) {
      throw new Error(
        `capture: the ${source.name} database has no publication ${source.publication}, and this role cannot create it (${redactText((err as Error).message)}): run sql/source-setup.sql on it as its owner (docs/capture.md)`,
        { cause: err },
      );
    }
  } finally {
    await c.end();
  }
}

/**
 * Signals every running capture to stop and waits (up to 30 s in all) until each has ended
 * (scripts/lib/stop-chains.ts; with the pipeline's pool, the lease holders are found too).
 */
export function stopCaptureRuns(temporal: Client, pool?: pg.Pool): Promise<StopReport> {
  return stopChains(temporal, { types: ['captureWorkflow'], pool });
}
