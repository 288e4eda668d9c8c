/**
 * BATCH_WORKER_NICE must reach every thread of the batch worker: on Linux a nice value is per
 * thread, and V8's garbage-collection threads exist before any of our code runs. Lowering only the
 * main thread (as the worker once did) left them competing with the drain.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

// In a process of its own (lowering this test process would slow every test after it): lower it,
// start a thread afterwards, and report every thread's nice value from /proc.
const CHILD = `
const { readdirSync, readFileSync } = require('node:fs');
const { Worker } = require('node:worker_threads');
const { lowerProcessPriority } = require('./worker/cpu-priority');
const result = lowerProcessPriority(7);
const later = new Worker('setTimeout(() => {}, 1000)', { eval: true });
later.on('online', () => {
  const nice = readdirSync('/proc/self/task').map((tid) => {
    const stat = readFileSync('/proc/self/task/' + tid + '/stat', 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
  });
  process.stdout.write(JSON.stringify({ result, nice }));
  process.exit(0);
});
`;

describe.runIf(existsSync('/proc/self/task'))('the batch worker’s lower priority', () => {
  it('reaches every thread of the process, those V8 started before it and those started after', () => {
    const out = execFileSync(process.execPath, ['--import', 'tsx', '-e', CHILD], { encoding: 'utf8' });
    const { result, nice } = JSON.parse(out) as { result: { failed: number }; nice: number[] };
    expect(result.failed).toBe(0);
    expect(nice.length).toBeGreaterThan(4); // main, V8's platform threads, the new worker thread
    expect(nice.every((n) => n >= 7)).toBe(true);
  });
});
