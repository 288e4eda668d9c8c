/** Starting the pipeline's real processes for a benchmark: a Node entry point, ready when its log says so. */
import { ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');

export function spawnNode(script: string, env: Record<string, string>, ready: RegExp): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer) => ready.test(String(d)) && resolve(child);
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d) => process.stderr.write(`[${path.basename(script)}] ${d}`));
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
  });
}
