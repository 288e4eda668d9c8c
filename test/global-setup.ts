/**
 * Once per test run: the test database (created and migrated), a pre-built workflow bundle, and
 * one Temporal dev server (the real server, in memory, headless, on a free port) that every test
 * file connects to. The binary is the one the set-up installed; nothing is downloaded.
 */
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { applyLeastPrivilege, ensureDatabase, migrate } from '../db/migrate';
import { DATA_DIR, startDevServer, DevServer } from '../scripts/lib/temporal-server';
import { buildWorkflowBundle } from '../worker/workflow-bundle';
import { TEST_DATABASE_URL } from './support/env';
import { freePort } from './support/redis-process';
import { createSplitSources } from './support/split-sources';

let server: DevServer | undefined;

/**
 * The test database, read when the set-up runs: the cluster and logical runs' own set-ups
 * (test/cluster-setup.ts, test/logical-setup.ts, which run first) start a PostgreSQL server of
 * their own and point TEST_DATABASE_URL at it after this module (and test/support/test-urls.ts)
 * was loaded.
 */
const testDatabaseUrl = () => process.env.TEST_DATABASE_URL ?? TEST_DATABASE_URL;

/** A folder per test database: the cluster run, beside the default run, writes its own bundle and log. */
const runDir = () => path.join(DATA_DIR, 'test', new URL(testDatabaseUrl()).pathname.slice(1));

// The dev server also binds a few internal ports of its own choosing; on a busy machine one of
// them is occasionally taken at that instant and it exits at start. Try again on a new port.
async function startServerWithRetries(): Promise<DevServer> {
  for (let attempt = 1; ; attempt++) {
    try {
      const port = await freePort();
      return await startDevServer({
        port,
        uiPort: null,
        namespace: 'default',
        dbFile: null,
        logFile: path.join(runDir(), 'temporal.log'),
      });
    } catch (err) {
      if (attempt >= 3) throw err;
      console.warn(`temporal dev server did not start (attempt ${attempt}): ${(err as Error).message}; retrying`);
    }
  }
}

export async function setup(project: TestProject): Promise<void> {
  await setupDatabase();

  const bundlePath = path.join(runDir(), 'workflow-bundle.js');
  const [, started] = await Promise.all([buildWorkflowBundle(bundlePath), startServerWithRetries()]);
  server = started;
  // Read by test/support/env.ts (sharedTestServer).
  const provide = project.provide as (key: string, value: string) => void;
  provide('temporalAddress', server.address);
  provide('workflowBundlePath', bundlePath);
}

async function setupDatabase(): Promise<void> {
  const url = testDatabaseUrl();
  await ensureDatabase(url);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await migrate(client);
  await applyLeastPrivilege(client); // the pipeline's child processes run as fresh_badges_worker
  // A file that captured from the WAL and died before its clean-up must not leave a source behind
  // (its coverage time would hold every later file's reads stale).
  await client.query('delete from pipeline.capture_progress');
  // The logical run (test/support/logical-run.ts) has two source databases of its own. The test
  // database's shop tables are then not a source: their capture triggers are off, so a write that
  // reached them by mistake would put nothing in the outbox and the test would fail.
  const logical = process.env.TEST_CAPTURE_MODE === 'logical';
  for (const t of ['skus', 'fulfillment_centers', 'region_fc', 'inventory', 'orders'])
    await client.query(`alter table shop.${t} ${logical ? 'disable' : 'enable'} trigger user`);
  await client.end();
  if (logical) await createSplitSources(url);
}

export async function teardown(): Promise<void> {
  await server?.stop();
}
