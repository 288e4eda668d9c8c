/**
 * Default values shared by the configuration and the workflows' inputs, so a setting's default is
 * written once. Plain numbers only (no zod, no process.env): workflow code imports this module and
 * it is bundled into Temporal's workflow sandbox.
 */

/** Defaults of environment variables (config/index.ts) that workflow inputs fall back to as well. */
export const CONFIG_DEFAULTS = {
  DRAIN_BATCH_SIZE: 5_000,
  DRAIN_MAX_BATCH_SIZE: 50_000,
  DRAIN_IDLE_WAIT_MS: 1_000,
  DRAIN_ACTIVITY_BUDGET_MS: 5_000,
  CHAIN_RUN_MS: 900_000,
  BACKFILL_CHUNK_ROWS: 5_000,
  BACKFILL_ROWS_PER_S: 50_000,
} as const;

/**
 * Defaults of workflow inputs that no environment variable sets (operators and tests pass them).
 * Where a workflow loops up to one of them, its schedule passes the value in each run's input
 * (scripts/lib/schedules.ts), so a deploy that changes it leaves runs in flight as they started.
 */
export const WORKFLOW_INPUT_DEFAULTS = {
  /** The drain stops starting batches this long before the next scheduled fire. */
  drainMarginMs: 300,
  replayChunkRows: 20_000,
  /** Landing calls per scheduled run; what is left is taken by the next run. */
  landingMaxCalls: 20,
  /**
   * Outbox prune calls per compaction run, each of at most COMPACTION_MAX_ROWS rows: the run's
   * bound (100,000,000 rows at the defaults). A run stopped by it says so (`more`, and a warning).
   */
  compactionMaxCalls: 50,
} as const;
