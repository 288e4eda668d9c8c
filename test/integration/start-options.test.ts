/**
 * `npm start`'s own flags: a bad simulator setting is a usage error before anything starts, and a
 * simulator setting without --simulate is refused rather than ignored; settings that disagree
 * (config/index.ts checkRunSettings) stop `npm start` and the worker before they start anything.
 */
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { sharedTestServer, testConfig } from '../support/env';
import { exited, spawnWorker } from '../support/worker-process';

function start(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stderr: string }> {
  // nothing to start against: were a flag taken, the start fails at once instead of running
  const env = {
    ...process.env,
    DATABASE_URL: 'postgres://127.0.0.1:1/none',
    TEMPORAL_ADDRESS: '127.0.0.1:1',
    ...extraEnv,
  };
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'scripts/start.ts', ...args],
      { timeout: 60_000, env },
      (err, _out, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr }),
    );
  });
}

describe('npm start options', () => {
  it('refuses a simulator rate or size that is not a whole number, naming the flag', async () => {
    for (const [flag, value] of [
      ['--rate', 'abc'],
      ['--rate', '1e3'],
      ['--skus', '0'],
      ['--skus', '10000000'], // beyond what the simulator takes
    ]) {
      const r = await start(['--simulate', flag, value]);
      expect(r.code, `${flag} ${value}`).not.toBe(0);
      expect(r.stderr).toMatch(new RegExp(`${flag} must be a whole number`));
    }
  });

  it('refuses a simulator setting without --simulate instead of ignoring it', async () => {
    const r = await start(['--rate', '500']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--rate sets the simulator: add --simulate/);
  });

  it('refuses settings that disagree before it starts anything', async () => {
    const r = await start([], { TOMBSTONE_TTL_S: '600' });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/TOMBSTONE_TTL_S=600: a discontinued SKU's key could expire before compaction/);
    // refused before the database was tried (it is unreachable here)
    expect(r.stderr).not.toMatch(/ECONNREFUSED|connect/);
  });

  it('the worker refuses them too, with the same message', async () => {
    const { address, bundlePath } = sharedTestServer();
    const worker = spawnWorker(testConfig(), address, bundlePath, { TOMBSTONE_TTL_S: '600' });
    let stderr = '';
    worker.stderr?.on('data', (d) => (stderr += d));
    await exited(worker);
    expect(worker.exitCode).not.toBe(0);
    expect(stderr).toMatch(/TOMBSTONE_TTL_S=600: a discontinued SKU's key could expire before compaction/);
  });
});
