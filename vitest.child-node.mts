import { createRequire } from 'node:module';

/**
 * NODE_OPTIONS for the Node processes the tests start (`ops`, workers, `npm start`, the API; about
 * 150 in `npm test`): V8's compiled code of their modules is kept on disk and reused
 * (v8-compile-cache), about 0.7 s less per start on a 2-core machine. `.ci/run` has a time limit.
 */
export const childNodeOptions = [
  process.env.NODE_OPTIONS,
  `--require ${createRequire(import.meta.url).resolve('v8-compile-cache')}`,
]
  .filter(Boolean)
  .join(' ');
