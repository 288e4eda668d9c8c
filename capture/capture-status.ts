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
import { captureSources, databaseName, slotName } from './sources';

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
  /** Why the slot was not read at all: this configuration has no database for the source. */
  unread?: string;
  /** The source position written into the outbox. */
  lsn: string | null;
  /** Every change committed on the source before this is in the outbox (ms since the epoch). */
  coveredAtMs: number | null;
  /** Set when the slot was lost: reads stay stale until the store is refilled from the source. */
  lostAtMs: number | null;
}

/** One small pool per source database, kept by the caller between calls. */
export type SourcePools = Map<string, pg.Pool>;

/**
 * Each source's capture: this configuration's sources under CAPTURE_MODE=logical, or the sources
 * named (`ops status` adds those whose capture schedules exist, whatever its own CAPTURE_MODE). A
 * source this configuration has no database for is reported from the pipeline's side only.
 */
export async function readCaptureStatus(
  config: Config,
  pipeline: pg.Pool,
  pools: SourcePools = new Map(),
  names: string[] = config.CAPTURE_MODE === 'logical' ? captureSources(config).map((s) => s.name) : [],
): Promise<CaptureSourceStatus[]> {
  const known = captureSources(config);
  return Promise.all(
    names.map(async (name) => {
      const s = known.find((k) => k.name === name);
      const progress = await readCaptureProgress(pipeline, name);
      const base = {
        source: name,
        slot: s?.slot ?? slotName(databaseName(config.DATABASE_URL), name),
        lsn: progress ? formatLsn(progress.lsn) : null,
        coveredAtMs: progress?.coveredAtMs ?? null,
        lostAtMs: progress?.lostAtMs ?? null,
      };
      if (!s)
        return {
          ...base,
          slotState: null,
          unread: `this configuration has no database for the source ${name} (CAPTURE_MODE=logical, INVENTORY_DATABASE_URL, ORDERS_DATABASE_URL)`,
        };
      return { ...base, ...(await slotStatus(s.url, s.slot, pools)) };
    }),
  );
}

/** The slot as its source database shows it (through a small pool kept in `pools`), or why it could not be read. */
async function slotStatus(
  url: string,
  slotName: string,
  pools: SourcePools,
): Promise<Pick<CaptureSourceStatus, 'slotState' | 'error'>> {
  let pool = pools.get(url);
  if (!pool) {
    pool = new pg.Pool({ connectionString: url, max: 1, connectionTimeoutMillis: 3_000 });
    pool.on('error', () => {});
    pools.set(url, pool);
  }
  try {
    const slot = await readSlot(pool, slotName);
    // only plain values: `ops status --json` prints this (an LSN is a bigint in the code)
    const { exists, active, retainedBytes, walStatus, confirmedFlushLsn, invalidationReason } = slot;
    const confirmedLsn = confirmedFlushLsn === null ? null : formatLsn(confirmedFlushLsn);
    return { slotState: { exists, active, confirmedLsn, retainedBytes, walStatus, invalidationReason } };
  } catch (err) {
    return { slotState: null, error: redactText((err as Error).message) };
  }
}
