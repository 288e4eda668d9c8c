import { defineConfig } from 'vitest/config';
import { childNodeOptions } from './vitest.child-node.mjs';

/**
 * The correctness cases that depend on where the store lives, again on a real 3-master Redis
 * Cluster started by the global set-up (test/cluster-setup.ts), with the store in 16 partitions
 * drained by 4 drain shards: every reason, ids, lifecycle, out-of-order commits and open
 * transactions, crashes, self-heal, verify, TRUNCATE, rebuilds, load deltas, the export's badge
 * snapshot, reads through the drain, partitions and shards. Plus the failover test, on a cluster of
 * its own. Not here: files that test one Redis on purpose (RDB restore, ACL users, layout upgrade,
 * counts of script calls), and files whose subject does not depend on the store's layout and that
 * the other two runs cover (the drain batch and workflow, compaction, the operator CLI, capture):
 * `.ci/run` has a time limit.
 */
// Redis db 14 for anything on the shared Redis (the store is the cluster): `npm test` runs this run
// beside the default run, which uses db 15. Its PostgreSQL server is its own (test/cluster-setup.ts).
process.env.TEST_REDIS_URL ??= 'redis://127.0.0.1:6379/14';

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
    reporters: ['default', ['./test/support/failure-summary-reporter.ts', { run: 'cluster' }]],
    include: [
      'test/integration/read-path.test.ts',
      'test/integration/ids.test.ts',
      'test/integration/lifecycle.test.ts',
      'test/integration/snapshot-delta.test.ts',
      'test/integration/crash-and-load.test.ts',
      'test/integration/verify-tombstones.test.ts',
      'test/integration/verify-under-traffic.test.ts',
      'test/integration/deletion-fence.test.ts',
      'test/integration/truncate.test.ts',
      'test/integration/rebuild-window.test.ts',
      'test/integration/rebuild-requests.test.ts',
      'test/integration/dead-letter-loads.test.ts',
      'test/integration/export.test.ts',
      'test/integration/read-e2e.test.ts',
      'test/integration/store-partitions.test.ts',
      'test/integration/drain-shards.test.ts',
      'test/integration/reshard-workflow.test.ts',
      'test/integration/redis-cluster-harness.test.ts',
      'test/integration/cluster-failover.test.ts',
    ],
    // the cluster set-up first: it starts the run's PostgreSQL server, which the global set-up migrates
    globalSetup: ['test/cluster-setup.ts', 'test/global-setup.ts'],
    // the minute-long open transactions are held in the single-Redis run; here a few seconds do
    // and the drain runs as 4 shards (DRAIN_SHARDS), each its own workflow chain over 4 of the 16 partitions
    env: {
      NODE_OPTIONS: childNodeOptions,
      OPEN_TX_TEST_MS: process.env.OPEN_TX_TEST_MS ?? '5000',
      TEST_DRAIN_SHARDS: process.env.TEST_DRAIN_SHARDS ?? '4',
      // a third of snapshot-delta's commit-order combinations (the whole product is the default run's)
      TEST_ORDER_SAMPLE: process.env.TEST_ORDER_SAMPLE ?? '3',
    },
  },
});
