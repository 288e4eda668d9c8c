import { Context } from '@temporalio/activity';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { Config, names } from '../../config';
import { StoreKeys } from '../../store/keys';
import { rethrowClassified } from '../errors';
import { pruneDeadLetters, pruneOutbox, PruneResult } from './prune-outbox';
import { sweepFieldTombstones } from './sweep-tombstones';

function heartbeat(details: unknown): void {
  try {
    Context.current().heartbeat(details);
  } catch {
    // outside an activity
  }
}

export function createCompactionActivities(deps: { pool: pg.Pool; redis: Redis; keys: StoreKeys; config: Config }) {
  const { config } = deps;
  return {
    async compactOutbox(input: { retentionMs?: number; maxRows?: number } = {}): Promise<PruneResult & { deadLetters: number }> {
      try {
        const r = await pruneOutbox(deps.pool, {
          retentionMs: input.retentionMs ?? config.OUTBOX_RETENTION_H * 3_600_000,
          chunk: config.COMPACTION_CHUNK,
          maxRows: input.maxRows ?? config.COMPACTION_MAX_ROWS,
          onProgress: (deleted) => heartbeat({ deleted }),
        });
        return { ...r, deadLetters: await pruneDeadLetters(deps.pool, config.DEAD_LETTER_RETENTION_D) };
      } catch (err) {
        rethrowClassified(err, 'outbox compaction');
      }
    },
    async sweepTombstones(input: { maxKeys?: number } = {}) {
      try {
        return await sweepFieldTombstones(deps.pool, deps.redis, deps.keys, names.drainConsumer, input.maxKeys ?? config.COMPACTION_SWEEP_KEYS);
      } catch (err) {
        rethrowClassified(err, 'tombstone sweep');
      }
    },
  };
}
