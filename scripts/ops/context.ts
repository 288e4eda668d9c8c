/** What every operator command needs, connected lazily with clear errors when a part is down. */
import { redactText } from '../../config/redact';
import { temporalConnectionOptions } from '../../config/temporal-connection';
import { Client, Connection } from '@temporalio/client';
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { Config, loadConfig } from '../../config';
import { createPool } from '../../db/pool';
import { storeKeysFor, StoreKeys } from '../../store/keys';
import { captureSources } from '../../capture/sources';
import { caughtUpReplicaOr } from '../../capture/replica';
import type { SourceDatabases } from '../../reconcile/source-features';
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
  /**
   * The shop tables' databases (inventory, orders), for reads only: each its replica when one is
   * set and has caught up with its primary (else the primary, with a warning on stderr).
   */
  sourceDatabases(): Promise<SourceDatabases>;
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
  const others = new Map<string, pg.Pool>();
  const sourcePool = () =>
    (source ??= config.REPLICA_DATABASE_URL
      ? createPool(config.REPLICA_DATABASE_URL, 4)
      : (pool ??= createPool(config.DATABASE_URL, 4)));
  return {
    config,
    keys: storeKeysFor(config),
    pool: () => (pool ??= createPool(config.DATABASE_URL, 4)),
    source: sourcePool,
    sourceDatabases: () =>
      shopDatabases(
        config,
        { pipeline: () => (pool ??= createPool(config.DATABASE_URL, 4)), replica: sourcePool },
        others,
      ),
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
      await Promise.all([...others.values()].map((p) => p.end()));
      if (source && source !== pool) await source.end();
      await pool?.end();
    },
  };
}

/**
 * Where the shop tables are read: the pipeline's source pool when they live there (trigger
 * capture), else each capture source's database (CAPTURE_MODE=logical with INVENTORY_DATABASE_URL
 * / ORDERS_DATABASE_URL), one pool per database, kept in `others`. A source's replica is read once
 * it has replayed what its primary had written (capture/replica.ts, caughtUpReplicaOr); one that
 * lags or follows another history is passed over for the primary, with a warning.
 */
async function shopDatabases(
  config: Config,
  /** The pipeline database's pool, and its replica's (the pipeline's when it has none). */
  own: { pipeline: () => pg.Pool; replica: () => pg.Pool },
  others: Map<string, pg.Pool>,
): Promise<SourceDatabases> {
  const sources = captureSources(config);
  const poolOf = (url: string): pg.Pool => {
    if (url === config.DATABASE_URL) return own.pipeline();
    if (url === config.REPLICA_DATABASE_URL) return own.replica();
    if (!others.has(url)) others.set(url, createPool(url, 2));
    return others.get(url)!;
  };
  const poolFor = async (table: 'skus' | 'orders'): Promise<pg.Pool> => {
    const s = sources.find((c) => (c.tables as string[]).includes(table))!;
    if (!s.replicaUrl) return poolOf(s.url);
    const read = await caughtUpReplicaOr(poolOf(s.url), poolOf(s.replicaUrl), `source ${s.name}`);
    if (read.why) process.stderr.write(`warning: ${redactText(read.why)}\n`);
    return read.db;
  };
  const inventory = await poolFor('skus');
  // (one source holding every table: checked once)
  const orders = sources.length === 1 ? inventory : await poolFor('orders');
  return { inventory, orders };
}

/**
 * Workflow ids with the time, readable in the Web UI, and a random tail: replay-…-20261125T160102Z-3f9a1c.
 * The tail: two commands started in the same second (two operators, or a script running them
 * together) would otherwise get one id, and the second failed to start its workflow.
 */
export function stamp(now = new Date()): string {
  const time = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `${time}-${randomBytes(3).toString('hex')}`;
}
