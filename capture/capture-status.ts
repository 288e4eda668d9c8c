/**
 * Each source's capture at a glance (`ops status`, the worker's metrics): its slot on the source
 * (whether it exists and streams, the WAL it keeps), how far the outbox has it, and whether its
 * slot was lost.
 */
import pg from 'pg';
import type { Config } from '../config';
import { redactText } from '../config/redact';
import { readCaptureProgress } from '../outbox/capture-progress';
import { formatLsn } from './pgoutput';
import { readSlot } from './slot';
import { captureSources } from './sources';

export interface CaptureSourceStatus {
  source: string;
  slot: string;
  /** The slot on the source: null when the source could not be reached (error says why). */
  slotState: {
    exists: boolean;
    active: boolean;
    /** The slot's confirmed_flush_lsn, as PostgreSQL writes an LSN (null: never confirmed). */
    confirmedLsn: string | null;
    retainedBytes: number;
    walStatus: string | null;
    /** Why the server invalidated it (PostgreSQL ≥ 16 says; capture/slot.ts), or null. */
    invalidationReason: string | null;
  } | null;
  error?: string;
  /** The source position written into the outbox. */
  lsn: string | null;
  /** Every change committed on the source before this is in the outbox (ms since the epoch). */
  coveredAtMs: number | null;
  /** Set when the slot was lost: reads stay stale until the store is refilled from the source. */
  lostAtMs: number | null;
}

/** One small pool per source database, kept by the caller between calls. */
export type SourcePools = Map<string, pg.Pool>;

export async function readCaptureStatus(
  config: Config,
  pipeline: pg.Pool,
  pools: SourcePools = new Map(),
): Promise<CaptureSourceStatus[]> {
  if (config.CAPTURE_MODE !== 'logical') return [];
  return Promise.all(
    captureSources(config).map(async (s) => {
      const progress = await readCaptureProgress(pipeline, s.name);
      let pool = pools.get(s.url);
      if (!pool) {
        pool = new pg.Pool({ connectionString: s.url, max: 1, connectionTimeoutMillis: 3_000 });
        pool.on('error', () => {});
        pools.set(s.url, pool);
      }
      const base = {
        source: s.name,
        slot: s.slot,
        lsn: progress ? formatLsn(progress.lsn) : null,
        coveredAtMs: progress?.coveredAtMs ?? null,
        lostAtMs: progress?.lostAtMs ?? null,
      };
      try {
        const slot = await readSlot(pool, s.slot);
        // only plain values: `ops status --json` prints this (an LSN is a bigint in the code)
        const { exists, active, retainedBytes, walStatus, confirmedFlushLsn, invalidationReason } = slot;
        const confirmedLsn = confirmedFlushLsn === null ? null : formatLsn(confirmedFlushLsn);
        return {
          ...base,
          slotState: { exists, active, confirmedLsn, retainedBytes, walStatus, invalidationReason },
        };
      } catch (err) {
        return { ...base, slotState: null, error: redactText((err as Error).message) };
      }
    }),
  );
}
