/** Runs the real read API entry point (serving/main.ts) as a child process on a free port. */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import type { Config } from '../../config';
import { eventually } from './env';
import { freePort } from './redis-process';
import { childEnv } from './worker-process';

const ROOT = path.resolve(__dirname, '..', '..');

/** Starts it and resolves once /healthz answers; `base` is its URL. */
export async function spawnApi(config: Config, address: string): Promise<{ child: ChildProcess; base: string }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'serving/main.ts'], {
    cwd: ROOT,
    env: { ...childEnv(config, address), API_PORT: String(port), API_HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', () => undefined);
  child.stderr?.on('data', (d) => process.stderr.write(`[api ${child.pid}] ${d}`));
  const base = `http://127.0.0.1:${port}`;
  await eventually(
    async () => (await fetch(`${base}/healthz`).catch(() => null))?.ok,
    30_000,
    'the read API to answer',
  );
  return { child, base };
}
