/** Runs the operator CLI (scripts/ops.ts) as a child process against the test services. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { Config } from '../../config';
import { childEnv } from './worker-process';

const ROOT = path.resolve(__dirname, '..', '..');

export function runOps(
  config: Config,
  address: string,
  args: string[],
  extraEnv: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/ops.ts', ...args], {
      cwd: ROOT,
      env: { ...childEnv(config, address), ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    // 'close', not 'exit': at 'exit' the pipes may still hold output not yet read (a loaded machine
    // lost a CLI's whole stdout so)
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
