/** Runs the real worker entry point (worker/main.ts) as a child process, so a test can kill -9 it. */
import { ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import type { Config } from '../../config';
import { workerRoleUrl } from './env';

const ROOT = path.resolve(__dirname, '..', '..');

/** The environment that points a child process at the test services. */
export { workerRoleUrl };

export function childEnv(config: Config, address: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    DATABASE_URL: workerRoleUrl(config.DATABASE_URL),
    REDIS_URL: config.REDIS_URL,
    REDIS_CLUSTER_NODES: config.REDIS_CLUSTER_NODES,
    STORE_PARTITIONS: String(config.STORE_PARTITIONS),
    DRAIN_SHARDS: String(config.DRAIN_SHARDS),
    REDIS_PREFIX: config.REDIS_PREFIX,
    TEMPORAL_ADDRESS: address,
    TEMPORAL_TASK_QUEUE: config.TEMPORAL_TASK_QUEUE,
    STALE_AFTER_MS: String(config.STALE_AFTER_MS),
    EXPORT_DIR: config.EXPORT_DIR,
    // the logical run's sources (test/support/logical-run.ts): the child reads the shop where it is
    ...(config.CAPTURE_MODE === 'logical'
      ? {
          CAPTURE_MODE: config.CAPTURE_MODE,
          INVENTORY_DATABASE_URL: config.INVENTORY_DATABASE_URL,
          ORDERS_DATABASE_URL: config.ORDERS_DATABASE_URL,
          CAPTURE_TICK_MS: String(config.CAPTURE_TICK_MS),
        }
      : {}),
  };
}

export function spawnWorker(
  config: Config,
  address: string,
  bundlePath: string,
  extraEnv: Record<string, string> = {},
): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'worker/main.ts'], {
    cwd: ROOT,
    env: {
      ...childEnv(config, address),
      DRAIN_POLL_MS: String(config.DRAIN_POLL_MS),
      DRAIN_BATCH_SIZE: String(config.DRAIN_BATCH_SIZE),
      APPLY_CHUNK: String(config.APPLY_CHUNK),
      WORKFLOW_BUNDLE: bundlePath,
      LOG_LEVEL: 'WARN',
      WORKER_METRICS_PORT: '0',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', () => undefined);
  child.stderr?.on('data', (d) => process.stderr.write(`[worker ${child.pid}] ${d}`));
  return child;
}

export function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) =>
    child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve()),
  );
}
