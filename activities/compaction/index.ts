import { cancellationSignal, heartbeat, log } from '@temporalio/activity';
import type { StoreRedis } from '../../store/redis-client';
import type pg from 'pg';
import { Config } from '../../config';
import { StoreKeys } from '../../store/keys';
import { pruneBatchLog, pruneDeadLetters, pruneOutbox, PruneResult } from './prune-outbox';
import { maintainPipelineTables, type TableMaintenance } from './vacuum-tables';
import { sweepFieldTombstones } from './sweep-tombstones';
import { holdWaiting, releaseHeldBy } from '../dead-letters';
import { reapplyRetriedHeld } from '../dead-letters/reapply';
import { applyOptions } from '../apply-options';
import type { SourceRows } from '../../capture/source-rows';
import type { Position } from '../../outbox';
import { CHUNK_RETENTION_H, pruneChunks } from '../../outbox/capture-chunks';

/** What compaction prunes besides the outbox rows, once per run after them. */
export interface CompactionFinish {
  deadLetters: number;
  batchLog: number;
  /** Chunks of re-reads through the capture (pipeline.capture_chunks) past CHUNK_RETENTION_H. */
  captureChunks: number;
  /** The VACUUM and ANALYZE statements run, and those that could not do their work. */
  tables: TableMaintenance;
}

export function createCompactionActivities(deps: {
  pool: pg.Pool;
  redis: StoreRedis;
  keys: StoreKeys;
  config: Config;
  sourceRows: SourceRows;
}) {
  const { config } = deps;
  const opts = applyOptions(config);
  const retentionOf = (input: { retentionMs?: number }) => input.retentionMs ?? config.OUTBOX_RETENTION_H * 3_600_000;
  const pruneOnce = (input: { retentionMs?: number; maxRows?: number; after?: Position | null }) =>
    pruneOutbox(deps.pool, {
      retentionMs: retentionOf(input),
      chunk: config.COMPACTION_CHUNK,
      maxRows: input.maxRows ?? config.COMPACTION_MAX_ROWS,
      after: input.after,
      onProgress: (deleted) => heartbeat({ deleted }),
    });
  const finish = (input: { retentionMs?: number; outboxPruned: boolean }) =>
    compactTheRest(deps.pool, config, { retentionMs: retentionOf(input), outboxPruned: input.outboxPruned });
  return {
    /**
     * One bounded outbox prune, then the rest of compaction: what runs begun by earlier workflow
     * code call (and the benchmarks, which pass a maxRows large enough for everything).
     */
    async compactOutbox(
      input: { retentionMs?: number; maxRows?: number } = {},
    ): Promise<PruneResult & CompactionFinish> {
      const r = await pruneOnce(input);
      return { ...r, ...(await finish({ retentionMs: input.retentionMs, outboxPruned: r.deleted > 0 })) };
    },
    /**
     * At most COMPACTION_MAX_ROWS (or `maxRows`) outbox rows, from `after` (the previous call's) on;
     * compactionWorkflow calls it again while `more`.
     */
    async pruneOutboxRows(
      input: { retentionMs?: number; maxRows?: number; after?: Position | null } = {},
    ): Promise<PruneResult> {
      return pruneOnce(input);
    },
    /**
     * After the outbox rows: dead letters, the batch log, capture chunks; then VACUUM and ANALYZE of the outbox and the pipeline's tables with churn (vacuum-tables.ts).
     */
    async finishCompaction(input: { retentionMs?: number; outboxPruned: boolean }): Promise<CompactionFinish> {
      return finish(input);
    },
    async sweepTombstones(input: { maxKeys?: number } = {}) {
      const swept = await sweepFieldTombstones(
        deps.pool,
        deps.redis,
        deps.keys,
        input.maxKeys ?? config.COMPACTION_SWEEP_KEYS,
        (visited, removed) => heartbeat({ visited, removed }),
      );
      // what waiting dead letters name held (again); retried letters whose subjects are held
      // applied again (a Redis back from a file written before their retry); then holds no
      // waiting letter names, left by a drain that died before its commit, released (store/held.ts)
      await holdWaiting(deps);
      const { settled, ...retried } = await reapplyRetriedHeld(
        { db: deps.pool, redis: deps.redis, allKeys: deps.keys, opts, sourceRows: deps.sourceRows },
        () => heartbeat({ step: 'retried dead letters applied again' }),
      );
      return { ...swept, retried, heldReleased: await releaseHeldBy(deps, settled) };
    },
  };
}

/**
 * The rest of compaction, once per run after the outbox rows: the other tables, then VACUUM.
 * (Landing days and export staging are the batch worker's files, pruned by the landing run on the
 * batch task queue where they are: activities/export/landing-retention.ts.)
 */
async function compactTheRest(
  pool: pg.Pool,
  config: Config,
  input: { retentionMs: number; outboxPruned: boolean },
): Promise<CompactionFinish> {
  const pruned = {
    deadLetters: await pruneDeadLetters(pool, config.DEAD_LETTER_RETENTION_D),
    batchLog: await pruneBatchLog(pool, input.retentionMs),
    captureChunks: await pruneChunks(pool, CHUNK_RETENTION_H),
  };
  // Last, so what was just pruned is reclaimed. Without autovacuum (as here, and on some
  // production clusters) nothing else would reclaim dead rows or refresh the statistics the
  // drain's plans rest on.
  const tables = await maintainPipelineTables(pool, {
    outboxPruned: input.outboxPruned,
    heartbeat: (statement) => heartbeat({ step: statement }),
    signal: cancellationSignal(),
  });
  const skipped = `compaction: ${tables.warnings.length} VACUUM/ANALYZE statement(s) did not do their work (a table the worker's role does not own is skipped: npm run migrate -- --roles makes it the owner)`;
  if (tables.warnings.length) log.warn(skipped, { warnings: tables.warnings });
  return { ...pruned, tables };
}
