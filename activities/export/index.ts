import { ApplicationFailure, heartbeat, log } from '@temporalio/activity';
import path from 'node:path';
import type pg from 'pg';
import { Config } from '../../config';
import { exportDay, pruneStaging, type IfEmpty } from './export-day';
import { NothingLandedError } from './day-inputs';
import { landChanges, landedThrough } from './landing';
import { keptDaysMessage, pruneLandingDays, type LandingRetention } from './landing-retention';

/**
 * A day that is over is exported only once the landing holds everything committed before its end:
 * with the drain paused or behind at export time, the day's later changes would land after the
 * export, be in no partition, and the next day would start from an incomplete end state. A plain
 * error: retried (the landing schedule goes on meanwhile), then the run fails, visibly. (Under the
 * trigger capture a change's time is its write, before its commit: a transaction open across
 * midnight for longer than the export's delay, 2 hours by default, is not waited for.)
 */
async function requireDayLanded(pool: pg.Pool, date: string): Promise<void> {
  const end = Date.parse(`${date}T00:00:00Z`) + 86_400_000;
  if (Number.isNaN(end) || Date.now() < end) return; // a day still running exports what it has so far
  const through = await landedThrough(pool);
  if (through !== null && through >= end) return;
  throw ApplicationFailure.retryable(
    `${date} is not fully landed yet: the landing holds everything committed before ${through === null ? 'an unknown time' : new Date(through).toISOString()}, not yet the day's end; the drain or capture may be paused or behind (npm run ops -- status). Export it again once caught up: npm run ops -- export --date ${date}`,
    'LandingBehind',
  );
}

/** How often a running export heartbeats between its own progress reports (timeout: 5 minutes). */
const EXPORT_KEEP_ALIVE_MS = 30_000;

/** The landing runs every minute: the warning about the same kept days is repeated at most this often. */
const KEPT_DAYS_WARN_EVERY_MS = 3_600_000;

export function createExportActivities(deps: { pool: pg.Pool; config: Config }) {
  const dir = path.resolve(deps.config.EXPORT_DIR);
  let warned: { days: string; at: number } | null = null;
  const warnKept = (kept: LandingRetention['kept']) => {
    const days = kept.map((k) => `${k.day}:${k.partition}`).join(',');
    if (warned && warned.days === days && Date.now() - warned.at < KEPT_DAYS_WARN_EVERY_MS) return;
    log.warn(keptDaysMessage(kept, deps.config.LANDING_RETENTION_D), { kept });
    warned = { days, at: Date.now() };
  };
  return {
    /** Lands applied changes as Parquet (see activities/export/landing.ts). */
    async landChanges() {
      return landChanges(deps.pool, dir, deps.config.LANDING_MAX_ROWS, {
        rowsPerSecond: deps.config.LANDING_ROWS_PER_S,
      });
    },
    /**
     * The landing days past LANDING_RETENTION_D whose partitions are complete, and what dead
     * exports left in EXPORT_DIR/.staging (export-day.ts, pruneStaging): on the batch task queue,
     * the worker whose EXPORT_DIR holds them. Days past the retention without a complete partition
     * are kept, in the result and in a warning (landing-retention.ts).
     */
    async pruneLanding(): Promise<LandingRetention & { staging: string[] }> {
      const landing = pruneLandingDays(dir, deps.config.LANDING_RETENTION_D);
      const staging = pruneStaging(dir);
      if (landing.kept.length) warnKept(landing.kept);
      return { ...landing, staging };
    },
    /**
     * Exports one UTC day from the landing area (see activities/export/export-day.ts). Nothing
     * landed is not retried: landing again would not change it, and the message says what to check.
     */
    async exportDay(input: { date: string; ifEmpty?: IfEmpty }) {
      await requireDayLanded(deps.pool, input.date);
      // One DuckDB statement of a big day (the landing's dedupe, a window over every change) can
      // run for minutes; DuckDB works off the event loop, so a timer keeps the heartbeat going.
      let step = 'starting';
      const keepAlive = setInterval(() => heartbeat({ date: input.date, step }), EXPORT_KEEP_ALIVE_MS);
      try {
        return await exportDay(dir, input.date, {
          memoryLimit: deps.config.EXPORT_MEMORY_LIMIT,
          onProgress: (what) => {
            step = what;
            heartbeat({ date: input.date, step: what });
          },
          ifEmpty: input.ifEmpty,
          landingRetentionDays: deps.config.LANDING_RETENTION_D,
          landedThroughMs: await landedThrough(deps.pool),
        });
      } catch (err) {
        if (err instanceof NothingLandedError) throw ApplicationFailure.nonRetryable(err.message, err.name);
        throw err;
      } finally {
        clearInterval(keepAlive);
      }
    },
  };
}
