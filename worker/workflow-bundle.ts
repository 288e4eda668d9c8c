/**
 * The workflow code the worker runs. Production loads a bundle built ahead of time
 * (`npm run build` -> dist/workflow-bundle.js): start-up takes milliseconds instead of seconds and
 * the code that runs is exactly the code that was built and replay-tested. Without a bundle
 * (development) the worker bundles workflows/ itself at start.
 */
import fs from 'node:fs';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { logger } from '../log/logger';

export const WORKFLOWS_PATH = path.resolve(__dirname, '..', 'workflows');
export const DEFAULT_BUNDLE_PATH = path.resolve(__dirname, '..', 'dist', 'workflow-bundle.js');

export async function buildWorkflowBundle(outFile: string): Promise<void> {
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietLogger });
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  // Write then rename: a reader never sees half a bundle.
  fs.writeFileSync(`${outFile}.tmp`, code);
  fs.renameSync(`${outFile}.tmp`, outFile);
}

export function workflowSource(
  bundlePath = process.env.WORKFLOW_BUNDLE ?? DEFAULT_BUNDLE_PATH,
): { workflowBundle: { codePath: string } } | { workflowsPath: string } {
  if (fs.existsSync(bundlePath)) return { workflowBundle: { codePath: bundlePath } };
  return { workflowsPath: WORKFLOWS_PATH };
}

const noop = () => undefined;
const quietLogger = {
  trace: noop,
  debug: noop,
  info: noop,
  warn: (m: string) => logger('bundler').warn(m),
  error: (m: string) => logger('bundler').error(m),
  log: noop,
};
