/**
 * A guard for a benchmark that holds replication slots (`npm run bench:e2e-logical`): started
 * detached (a session of its own, so a Ctrl-C meant for the benchmark does not reach it), it
 * waits for the benchmark's process to end, however it ends (even SIGKILL, where no cleanup of
 * its own runs), then stops the pipeline processes the benchmark started (their pids are in
 * `pidsFile`; a process is only signalled when its command line is still one of those) and drops
 * the slots, so none is left holding the sources' WAL. After a clean end there is nothing left to do.
 *
 *   node --import tsx scripts/bench/slot-guard.ts <benchmark pid> <admin URL> <pids file> <slot>...
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { dropSlots, withClient } from '../lib/source-databases';

/** Starts the guard for this process; `pidsFile` is where the benchmark writes its pipeline's process ids. */
export function startSlotGuard(adminUrl: string, pidsFile: string, slots: string[]): void {
  fs.rmSync(pidsFile, { force: true });
  spawn(
    process.execPath,
    ['--import', 'tsx', path.join(__dirname, 'slot-guard.ts'), String(process.pid), adminUrl, pidsFile, ...slots],
    { detached: true, stdio: 'ignore', cwd: path.resolve(__dirname, '..', '..') },
  ).unref();
}

/** The pipeline's processes the benchmark started, for the guard. */
export function recordPipelinePids(pidsFile: string, pids: number[]): void {
  fs.writeFileSync(pidsFile, pids.join('\n'));
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const PIPELINE_COMMAND = /worker\/main\.ts|serving\/main\.ts|temporal.*start-dev/;

function killPipeline(pidsFile: string): void {
  if (!fs.existsSync(pidsFile)) return;
  for (const pid of fs.readFileSync(pidsFile, 'utf8').split('\n').map(Number).filter(Boolean)) {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (PIPELINE_COMMAND.test(cmd)) process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  fs.rmSync(pidsFile, { force: true });
}

async function guard(benchPid: number, adminUrl: string, pidsFile: string, slots: string[]): Promise<void> {
  while (alive(benchPid)) await sleep(500);
  killPipeline(pidsFile);
  for (let i = 0; i < 10; i++) {
    await dropSlots(adminUrl, slots).catch(() => undefined);
    const left = await withClient(
      adminUrl,
      async (c) =>
        (await c.query(`select 1 from pg_replication_slots where slot_name = any($1)`, [slots])).rowCount ?? 0,
    ).catch(() => 1);
    if (!left) return;
    await sleep(1_000);
  }
}

if (require.main === module) {
  const [pid, adminUrl, pidsFile, ...slots] = process.argv.slice(2);
  guard(Number(pid), adminUrl!, pidsFile!, slots).then(
    () => process.exit(0),
    () => process.exit(1),
  );
}
