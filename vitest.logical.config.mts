import { defineConfig } from 'vitest/config';
import { childNodeOptions } from './vitest.child-node.mjs';

/**
 * The correctness cases again with capture from the WAL (CAPTURE_MODE=logical) of two source
 * databases, inventory and orders, beside the pipeline's own (test/support/logical-run.ts): the
 * test files write "the shop" as always and a routed pool sends each statement to the database
 * holding its tables; each file's process captures both sources into the outbox. The store is in
 * two partitions here.
 */
// read by the global set-up (which creates the source databases) and every test file's process
process.env.TEST_CAPTURE_MODE = 'logical';
// Redis db 13 for the store: `npm test` runs this run beside the default run (db 15) and after the
// cluster run (db 14 for what is not on its cluster). Its PostgreSQL server is its own (test/logical-setup.ts).
process.env.TEST_REDIS_URL ??= 'redis://127.0.0.1:6379/13';

export default defineConfig({
  test: {
    // as vitest.config.mts: child processes, one file at a time
    pool: 'forks',
    fileParallelism: false,
    // and, as there, all files in one child process with modules loaded once (`.ci/run`'s time limit)
    isolate: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // and each failure in one line, for `npm test`'s list at its end (scripts/test.sh)
    reporters: ['default', ['./test/support/failure-summary-reporter.ts', { run: 'logical' }]],
    include: [
      'test/integration/read-path.test.ts',
      'test/integration/ids.test.ts',
      'test/integration/lifecycle.test.ts',
      'test/integration/snapshot-delta.test.ts',
      'test/integration/drain-batch.test.ts',
      'test/integration/crash-and-load.test.ts',
      'test/integration/deletion-fence.test.ts',
      'test/integration/compaction.test.ts',
      'test/integration/verify-under-traffic.test.ts',
      'test/integration/verify-tombstones.test.ts',
      'test/integration/verify-while-behind.test.ts',
      // a rebuilt SKU's request is cleared once its rows, re-read between watermarks, are applied
      'test/integration/rebuild-pending-read.test.ts',
      // the capture's write as the root of each change trace
      'test/integration/tracing.test.ts',
      // TRUNCATE of each source's table, and one dead-lettered by an older version (kept out of the
      // stream by the source's publication: test/support/source.ts)
      'test/integration/truncate.test.ts',
      // retried load deltas against load sets re-read through the outbox
      'test/integration/dead-letter-loads.test.ts',
      // routing, shared shards with a worker SIGKILLed, re-splits under traffic and with no drain
      'test/integration/drain-shards.test.ts',
      // the re-split as a workflow: an operator's pause kept, a second request, cancel, terminate
      'test/integration/reshard-workflow.test.ts',
      // the operator CLI and `npm start` under faults, on the product's own capture workflows
      // (useProductCapture in test/support/logical-run.ts)
      'test/integration/operations.test.ts',
      'test/integration/faults.test.ts',
    ],
    // the logical set-up first: it starts the run's PostgreSQL server, which the global set-up migrates
    globalSetup: ['test/logical-setup.ts', 'test/global-setup.ts'],
    env: {
      NODE_OPTIONS: childNodeOptions,
      // the default run holds the transactions for a minute; here, as in the cluster run, shorter
      OPEN_TX_TEST_MS: process.env.OPEN_TX_TEST_MS ?? '10000',
      // The store in two partitions (on the one Redis): the paths only capture from the WAL takes
      // (refills, repairs and re-reads between watermarks) meet partitions here, and the cluster
      // run (16 partitions, 4 drain shards) covers the trigger capture. A refill that read the
      // partitions' copies of the loads wrong went unseen with one.
      TEST_STORE_PARTITIONS: process.env.TEST_STORE_PARTITIONS ?? '2',
    },
  },
});
