/** What every operator command needs, connected lazily with clear errors when a part is down. */
import { redactText } from '../../config/redact';
import { temporalConnectionOptions } from '../../config/temporal-connection';
import { Client, Connection } from '@temporalio/client';
import type pg from 'pg';
import { Config, loadConfig } from '../../config';
import { createPool } from '../../db/pool';
import { storeKeysFor, StoreKeys } from '../../store/keys';
import { createStoreRedis, describeStoreRedis, StoreRedis } from '../../store/redis-client';

export class OpsError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export interface OpsContext {
  config: Config;
  keys: StoreKeys;
  pool(): pg.Pool;
  source(): pg.Pool;
  redis(): Promise<StoreRedis>;
  temporal(): Promise<Client>;
  close(): Promise<void>;
}

export function createOpsContext(): OpsContext {
  const config = loadConfig();
  let pool: pg.Pool | undefined;
  let source: pg.Pool | undefined;
  let redis: StoreRedis | undefined;
  let connection: Connection | undefined;
  let client: Client | undefined;
  return {
    config,
    keys: storeKeysFor(config),
    pool: () => (pool ??= createPool(config.DATABASE_URL, 4)),
    source: () =>
      (source ??= config.REPLICA_DATABASE_URL
        ? createPool(config.REPLICA_DATABASE_URL, 4)
        : (pool ??= createPool(config.DATABASE_URL, 4))),
    async redis() {
      if (!redis) {
        redis = createStoreRedis(config, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
        await redis.connect().catch((err) => {
          throw new OpsError(`Redis is not reachable at ${describeStoreRedis(config)}: ${redactText(err.message)}`);
        });
      }
      return redis;
    },
    async temporal() {
      if (!client) {
        connection = await Connection.connect({ ...temporalConnectionOptions(config), connectTimeout: 3_000 }).catch(
          (err) => {
            throw new OpsError(
              `Temporal is not reachable at ${config.TEMPORAL_ADDRESS} (start it with \`npm run stack -- start\` or \`npm start\`): ${err.message}`,
            );
          },
        );
        client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
      }
      return client;
    },
    async close() {
      redis?.disconnect();
      await connection?.close().catch(() => undefined);
      if (source && source !== pool) await source.end();
      await pool?.end();
    },
  };
}

/** Workflow ids with the time, readable in the Web UI: replay-…-20261125T160102Z. */
export function stamp(now = new Date()): string {
  return now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}
