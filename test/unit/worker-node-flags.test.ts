/**
 * The pipeline worker's Node flags (worker/node-flags.ts) are the ones `npm start` and `npm run
 * worker` pass (package.json cannot import them), so the benchmarks measure the process users run.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PIPELINE_WORKER_NODE_FLAGS } from '../../worker/node-flags';

const scripts = (
  JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  }
).scripts;

describe('pipeline worker node flags', () => {
  it.each(['start', 'worker'])('npm run %s starts the worker with them', (name) => {
    const command = scripts[name]!.split('&&').pop()!.trim();
    expect(command).toBe(`node ${PIPELINE_WORKER_NODE_FLAGS.join(' ')} --import tsx ${command.split(' ').pop()}`);
  });
});
