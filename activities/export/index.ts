import { ApplicationFailure, heartbeat } from '@temporalio/activity';
import path from 'node:path';
import type pg from 'pg';
import { Config } from '../../config';
import { exportDay, type IfEmpty } from './export-day';
import { NothingLandedError } from './day-inputs';
import { landChanges } from './landing';

export function createExportActivities(deps: { pool: pg.Pool; config: Config }) {
  const dir = path.resolve(deps.config.EXPORT_DIR);
  return {
    /** Lands applied changes as Parquet (see activities/export/landing.ts). */
    async landChanges() {
      return landChanges(deps.pool, dir, deps.config.LANDING_MAX_ROWS, {
        rowsPerSecond: deps.config.LANDING_ROWS_PER_S,
      });
    },
    /**
     * Exports one UTC day from the landing area (see activities/export/export-day.ts). Nothing
     * landed is not retried: landing again would not change it, and the message says what to check.
     */
    async exportDay(input: { date: string; ifEmpty?: IfEmpty }) {
      try {
        return await exportDay(dir, input.date, {
          memoryLimit: deps.config.EXPORT_MEMORY_LIMIT,
          onProgress: (what) => heartbeat({ date: input.date, step: what }),
          ifEmpty: input.ifEmpty,
          landingRetentionDays: deps.config.LANDING_RETENTION_D,
        });
      } catch (err) {
        if (err instanceof NothingLandedError) throw ApplicationFailure.nonRetryable(err.message, err.name);
        throw err;
      }
    },
  };
}
