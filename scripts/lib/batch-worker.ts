/**
 * `npm start`'s second worker process: landing and the nightly export (the `batch` task queue),
 * apart from the drain so its minute of Parquet work never holds the drain's event loop. Started
 * again 2 s after it fails; stopped with the parent (SIGTERM, or its stdin closing when the parent
 * is killed outright, so no orphan keeps polling).
 */
import { ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { logger } from '../../log/logger';

const ROOT = path.resolve(__dirname, '..', '..');

export interface SupervisedWorker {
  /** Asks the worker to finish its activities and exit; resolves when it has. */
  stop(): Promise<void>;
}

export function superviseBatchWorker(metricsPort: number, env: NodeJS.ProcessEnv = process.env): SupervisedWorker {
  let stopping = false;
  let child: ChildProcess | null = null;
  const start = (): void => {
    const c = spawn(process.execPath, ['--import', 'tsx', 'worker/main.ts'], {
      cwd: ROOT,
      env: {
        ...env,
        WORKER_TASK_QUEUES: 'batch',
        WORKER_EXIT_WITH_PARENT: '1',
        WORKER_METRICS_PORT: String(metricsPort),
      },
      // stdin is a pipe the child watches: it closes when this process dies, however it dies.
      stdio: ['pipe', 'inherit', 'inherit'],
    });
    child = c;
    c.once('exit', (code, signal) => {
      child = null;
      // Exit code 0 is a graceful stop (Ctrl-C reaches the whole process group): not a failure.
      if (stopping || code === 0) return;
      logger('start').error(
        `batch worker (landing, export) exited (${signal ?? `code ${code}`}); starting it again in 2 s`,
      );
      void sleep(2_000).then(() => stopping || start());
    });
  };
  start();
  return {
    async stop() {
      stopping = true;
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
      c.kill('SIGTERM');
      await exited;
    },
  };
}
