/** What the parts of `npm run bench:e2e-logical` (e2e-logical.ts) share: its options, the running pipeline, the results. */
import type { TemporalActions } from './temporal-actions';
import type { ScheduleHandle } from '@temporalio/client';
import type { Config } from '../../config';
import type { CatalogueSize } from '../../simulator/catalogue';
import type { CpuUse } from './cpu';
import type { FreshnessRun } from './freshness-probes';
import type { LogicalBench } from './logical-env';
import type { MachineLimits } from './machine-limits';
import type { BenchPipeline } from './processes';

export interface Options {
  skus: number;
  idleSeconds: number;
  rates: number[];
  pgbenchRates: number[];
  seconds: number;
  /** Seconds each load runs before the measured `seconds` (its probes reported apart). */
  warmupSeconds: number;
  backlog: number;
  backlogTxRows: number;
  tickMs: number;
  drainActivityBudgetMs: number;
}

/** The bench's databases and store, the catalogue as loaded, the running pipeline and its schedules. */
export interface LogicalRun {
  lb: LogicalBench;
  config: Config;
  actual: CatalogueSize;
  pipeline: BenchPipeline;
  landing: ScheduleHandle;
  /** One capture schedule per source. */
  captures: ScheduleHandle[];
}

export interface LogicalLimits extends MachineLimits {
  /** Outbox rows/s written by COPY from one process (machine-limits.ts). */
  copyRowsPerS: number;
}

export type { CpuUse };

export interface LogicalFreshnessRun extends FreshnessRun {
  /** Commit -> the API's asOf at or after the commit (ms), one per probe. */
  vouched: number[];
  /** Seconds from the end of the load until the drain had applied everything committed by then. */
  caughtUpAfter: number;
  cpu: CpuUse;
  drainBatchesPerS: number;
  /** Commits per second in the pipeline's database: capture's outbox writes (ticks included), the drain, leases. */
  commitsPerS: number;
  /** History events and activities per minute of the drain and capture runs during the section. */
  temporal: TemporalActions;
}

export interface Freshness {
  runs: LogicalFreshnessRun[];
  /** WAL each source's slot kept at the end of the section, with a transaction held open on it all along (bytes). */
  retained: Record<string, number>;
  /** Checkpoints the server ran during the section (each one's full-page images burst the WAL capture decodes), and its max_wal_size. */
  checkpoints: { count: number; maxWalSize: string };
}

export interface CatchUp {
  /** Changes written per source (counted by the writers). */
  written: Record<string, number>;
  writeSeconds: number;
  /** WAL each slot kept (bytes) when capture was paused, before the backlog. */
  keptAtPause: Record<string, number>;
  /** The server decoding each slot's backlog by itself, nothing consumed. */
  decode: Record<string, { changes: number; perS: number }>;
  /** Changes the captures wrote into the outbox from the resume until caught up, per source. */
  captured: Record<string, number>;
  /** Seconds from the resume until each source's coverage passed the resume (its backlog in the outbox). */
  captureSeconds: Record<string, number>;
  /** Seconds from the resume until the drain had applied a snapshot covering everything committed before it. */
  caughtUp: number;
  /** Seconds from the resume until the API answered fresh again. */
  fresh: number;
  scanRowsPerS: number;
  cpu: CpuUse;
}

export interface Report {
  actual: CatalogueSize;
  limits: LogicalLimits;
  freshness: Freshness;
  catchUp: CatchUp;
  o: Options;
  tickMs: number;
}
