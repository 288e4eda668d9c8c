/**
 * The read API as a process: `npm run api` on its own (a read replica of the service needs no
 * worker and no PostgreSQL), or started by `npm start` with the pipeline.
 */
import type http from 'node:http';
import { Config, loadConfig } from '../config';
import { createStoreRedis, StoreRedis } from '../store/redis-client';
import { createBadgeReader } from './badge-reader';
import { ApiOptions, createApiServer } from './http-api';
import { logger } from '../log/logger';

const log = logger('api');

/**
 * How long a read's Redis command may take before it fails (503). A read is one script call of well
 * under a millisecond: a Redis that holds it longer is paused, stalled or cut off without a reset,
 * and a caller is better served by a 503 it can act on than by a request hanging until TCP gives up.
 */
export const READ_COMMAND_TIMEOUT_MS = 1_000;

/**
 * A Redis client for the read path: fail fast while disconnected or unanswering (503), reconnect
 * by itself.
 */
export function readPathRedis(config: Pick<Config, 'REDIS_URL' | 'REDIS_CLUSTER_NODES'>): StoreRedis {
  const redis = createStoreRedis(config, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: READ_COMMAND_TIMEOUT_MS,
    retryStrategy: (attempt) => Math.min(attempt * 100, 1000),
  });
  let lastLog = 0;
  redis.on('error', (err) => {
    if (Date.now() - lastLog > 10_000) {
      lastLog = Date.now();
      log.warn(`redis: ${err.message} (reads answer 503 until it is back)`);
    }
  });
  return redis;
}

export async function startApi(
  config: Config = loadConfig(),
  opts: Pick<ApiOptions, 'dependencies'> = {},
): Promise<{ server: http.Server; redis: StoreRedis; close(): Promise<void> }> {
  const redis = readPathRedis(config);
  const reader = createBadgeReader({
    redis,
    prefix: config.REDIS_PREFIX,
    partitions: config.STORE_PARTITIONS,
    staleAfterMs: config.STALE_AFTER_MS,
  });
  const server = createApiServer({ reader, ...opts });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? new Error(`API_PORT ${config.API_PORT} is already taken on ${config.API_HOST}: choose another port`)
          : err,
      ),
    );
    server.listen(config.API_PORT, config.API_HOST, () => resolve());
  });
  return {
    server,
    redis,
    async close() {
      await new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
      redis.disconnect();
    },
  };
}

if (require.main === module) {
  startApi()
    .then(({ server, close }) => {
      const a = server.address();
      log.info(`read API listening on http://${typeof a === 'object' && a ? `${a.address}:${a.port}` : a}`);
      // In-flight requests finish (server.close waits for them); bounded at 10 s.
      const stop = () => {
        setTimeout(() => process.exit(1), 10_000).unref();
        void close().then(() => process.exit(0));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    })
    .catch((err) => {
      log.error(err.message);
      process.exit(1);
    });
}
