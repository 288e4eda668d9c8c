import { configDefaults, defineConfig } from 'vitest/config';
import { childNodeOptions } from './vitest.child-node.mjs';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // on a Redis Cluster of their own: the cluster run (vitest.cluster.config.mts, `npm test`)
    exclude: [...configDefaults.exclude, 'test/integration/*cluster*.test.ts'],
    // The Temporal SDK's native parts break in worker threads: use child processes. Integration
    // files share one Postgres database, one Redis db and one Temporal dev server, so they run
    // one at a time (two cores would not run them faster anyway).
    pool: 'forks',
    fileParallelism: false,
    // All files in one child process, modules loaded once: about a second less per file (79 files;
    // `.ci/run` has a time limit). Each file resets what it uses (resetState) and closes its
    // clients, workers and servers in afterAll, which this relies on.
    isolate: false,
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // and each failure in one line, for `npm test`'s list at its end (scripts/test.sh)
    reporters: ['default', ['./test/support/failure-summary-reporter.ts', { run: 'default' }]],
    env: { NODE_OPTIONS: childNodeOptions },
  },
});
