/**
 * CPU time of this machine's parts, read from /proc and Redis INFO, for "CPU per change" figures:
 * take a sample before and after a measured stretch and divide the difference by its changes.
 * Linux only (the benchmarks' machine); processes that end meanwhile (pgbench connections) take
 * their CPU time with them, so the machine-wide figure is the one that adds everything up.
 */
import fs from 'node:fs';
import type { Redis } from 'ioredis';

const TICKS_PER_S = 100; // USER_HZ on Linux

/** CPU seconds (user + system) of one process, 0 once it is gone. */
export function processCpuSeconds(pid: number): number {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / TICKS_PER_S;
  } catch {
    return 0;
  }
}

/** CPU seconds used by all postgres processes (from /proc), to show the load on the database server. */
export function postgresCpuSeconds(): number {
  let all = 0;
  for (const p of postgresProcesses().values()) all += p.seconds;
  return all;
}

/** Each postgres process running now: its CPU seconds and whether it is a walsender (logical decoding). */
export function postgresProcesses(): Map<number, { seconds: number; walsender: boolean }> {
  const out = new Map<number, { seconds: number; walsender: boolean }>();
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'postgres') continue;
      // the process title: "postgres: [cluster: ]walsender <user> <host> <command>"
      const walsender = /^postgres: (\S+: )?walsender /.test(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
      out.set(Number(pid), { seconds: processCpuSeconds(Number(pid)), walsender });
    } catch {
      // process went away
    }
  }
  return out;
}

/** The whole machine's busy CPU seconds (every core, everything but idle and iowait) and its cores. */
export function machineCpuSeconds(): { busy: number; cores: number } {
  const stat = fs.readFileSync('/proc/stat', 'utf8');
  const total = stat.split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = total;
  const busy = (user! + nice! + system! + irq! + softirq! + (steal ?? 0)) / TICKS_PER_S;
  const cores = stat.split('\n').filter((l) => /^cpu\d+ /.test(l)).length;
  return { busy, cores };
}

/** CPU seconds (user + system) of Redis servers, from INFO cpu. */
export async function redisCpuSeconds(nodes: Redis[]): Promise<number> {
  let seconds = 0;
  for (const node of nodes) {
    const cpu = await node.info('cpu');
    seconds +=
      Number(/used_cpu_sys:([\d.]+)/.exec(cpu)?.[1] ?? 0) + Number(/used_cpu_user:([\d.]+)/.exec(cpu)?.[1] ?? 0);
  }
  return seconds;
}

/** One reading of every part's CPU seconds: the named processes, PostgreSQL's, Redis, the machine. */
export interface CpuSample {
  at: number;
  processes: Record<string, number>;
  postgres: ReturnType<typeof postgresProcesses>;
  redis: number;
  machine: number;
  cores: number;
}

export async function sampleCpu(pids: Record<string, number>, redis: Redis[]): Promise<CpuSample> {
  const processes = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, processCpuSeconds(pid)]));
  const { busy, cores } = machineCpuSeconds();
  return {
    at: performance.now(),
    processes,
    postgres: postgresProcesses(),
    redis: await redisCpuSeconds(redis),
    machine: busy,
    cores,
  };
}

/** CPU seconds each part used between two samples, and the wall-clock seconds between them. */
export interface CpuUse {
  seconds: number;
  processes: Record<string, number>;
  /**
   * PostgreSQL's processes alive at the second sample (a backend that ended before it, such as
   * pgbench's when its run is over, is missing: the machine's figure has it).
   */
  postgres: number;
  /** The walsenders among them: logical decoding for capture. */
  walsenders: number;
  redis: number;
  machine: number;
  cores: number;
}

export function cpuBetween(a: CpuSample, b: CpuSample): CpuUse {
  let postgres = 0;
  let walsenders = 0;
  for (const [pid, p] of b.postgres) {
    const used = p.seconds - (a.postgres.get(pid)?.seconds ?? 0);
    postgres += used;
    if (p.walsender) walsenders += used;
  }
  return {
    seconds: (b.at - a.at) / 1000,
    processes: Object.fromEntries(Object.keys(b.processes).map((k) => [k, b.processes[k]! - (a.processes[k] ?? 0)])),
    postgres,
    walsenders,
    redis: b.redis - a.redis,
    machine: b.machine - a.machine,
    cores: b.cores,
  };
}
