/**
 * Every side effect of the pipeline, as Temporal activities built from their clients
 * (`createActivities({ pool, redis, config })`), so tests hand in real clients and workflows
 * import only the types.
 */
import { log } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import type { StoreRedis } from '../store/redis-client';
import type pg from 'pg';
import type { Config } from '../config';
import { storeKeysFor } from '../store/keys';
import type { DrainMetrics } from './metrics';
import { createBackfillActivities } from './backfill';
import { createCompactionActivities } from './compaction';
import { createDrainActivities } from './drain';
import { createLifecycleActivities } from './lifecycle';
import { createReplayActivities } from './replay';
import { createVerifyActivities } from './verify';
import { createDeadLetterActivities } from './dead-letters';
import { createExportActivities } from './export';
import { createReshardActivities } from './drain/reshard-activities';
import { createCaptureActivities } from './capture';
import { sourceRowsFor, type SourceRows } from '../capture/source-rows';

export interface ActivityClients {
  pool: pg.Pool;
  redis: StoreRedis;
  config: Config;
  /** Reads for backfill and verify: the primary under the trigger capture (worker/main.ts), else the replica when REPLICA_DATABASE_URL is set. */
  sourcePool?: pg.Pool;
  metrics?: DrainMetrics;
  /** How source rows are re-read into the outbox (capture/source-rows.ts); from the configuration when absent. */
  sourceRows?: SourceRows;
  /** A Temporal client (opened on first use), for activities that manage schedules (a re-split). */
  temporal?: () => Promise<Client>;
  /** Aborted once the worker is shutting down: drain and capture runs end now, not at their budget. */
  stopping?: AbortSignal;
}

/** The activity logger (the worker's, with the activity's context attached by the SDK). */
function activityLog(level: 'info' | 'warn', message: string, fields?: Record<string, unknown>): void {
  log[level](message, fields);
}

export function createActivities(clients: ActivityClients) {
  const keys = storeKeysFor(clients.config);
  const sourceRows = clients.sourceRows ?? sourceRowsFor(clients.config, clients.pool);
  return {
    ...createCaptureActivities(clients),
    ...createDrainActivities({ ...clients, keys, log: activityLog, metrics: clients.metrics }),
    ...createReshardActivities({ ...clients, keys }),
    ...createLifecycleActivities({ ...clients, keys, sourceRows }),
    ...createCompactionActivities({ ...clients, keys, sourceRows }),
    ...createReplayActivities({ ...clients, keys, sourceRows }),
    ...createVerifyActivities({ ...clients, sourcePool: clients.sourcePool ?? clients.pool, keys, log: activityLog }),
    ...createDeadLetterActivities({ ...clients, keys, sourceRows }),
    ...createExportActivities(clients),
    ...createBackfillActivities({ ...clients, sourcePool: clients.sourcePool ?? clients.pool, keys }),
  };
}

export type Activities = ReturnType<typeof createActivities>;
