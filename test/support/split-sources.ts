/**
 * Two source databases beside the test pipeline database, as the contract allows: the inventory
 * service's (skus, fulfillment_centers, region_fc, inventory) and the order service's (orders),
 * each set up by sql/source-setup.sql (publication, replica identity, the capture role). Created
 * fresh per test file (scripts/lib/source-databases.ts). The pipeline reads them as the
 * least-privilege role that script creates (REPLICATION and SELECT only).
 */
import type { Client, WorkflowHandle } from '@temporalio/client';
import pg from 'pg';
import { captureWorkflow, stopCaptureSignal, type CaptureWorkflowInput } from '../../workflows';
import { captureSources, databaseName, slotName, type CaptureSource } from '../../capture/sources';
import {
  createSourceDatabase,
  dropSlots,
  readerUrl,
  withClient,
  withDatabase,
} from '../../scripts/lib/source-databases';
import { eventually } from './env';
import { TEST_DATABASE_URL } from './test-urls';

// named after the test database (fresh_badges_test_inventory, ...): a run given another test
// database (TEST_DATABASE_URL) has source databases of its own too
const TEST_DATABASE_NAME = new URL(TEST_DATABASE_URL).pathname.slice(1);
export const TEST_INVENTORY_URL = withDatabase(TEST_DATABASE_URL, `${TEST_DATABASE_NAME}_inventory`);
export const TEST_ORDERS_URL = withDatabase(TEST_DATABASE_URL, `${TEST_DATABASE_NAME}_orders`);

/** The configuration of the split layout, read as the capture role. */
export const SPLIT_SOURCE_CONFIG = {
  CAPTURE_MODE: 'logical',
  INVENTORY_DATABASE_URL: readerUrl(TEST_INVENTORY_URL),
  ORDERS_DATABASE_URL: readerUrl(TEST_ORDERS_URL),
};

/** The capture sources of the split layout (slot names derived from the test pipeline database). */
export function splitSources(): CaptureSource[] {
  return captureSources({ DATABASE_URL: TEST_DATABASE_URL, ...SPLIT_SOURCE_CONFIG });
}

/**
 * Drops and re-creates both source databases with the shop schema and sql/source-setup.sql.
 * `testDatabaseUrl`: the global set-up passes the one it was given at run time (the logical run's
 * own server, test/logical-setup.ts, is started after this module was loaded).
 */
export async function createSplitSources(testDatabaseUrl = TEST_DATABASE_URL): Promise<void> {
  const name = databaseName(testDatabaseUrl);
  await dropSlots(
    withDatabase(testDatabaseUrl, 'postgres'),
    ['inventory', 'orders'].map((source) => slotName(name, source)),
  );
  const url = (tables: string) => withDatabase(testDatabaseUrl, `${name}_${tables}`);
  await createSourceDatabase({ url: url('inventory'), tables: 'inventory', forCapture: true });
  await createSourceDatabase({ url: url('orders'), tables: 'orders', forCapture: true });
}

/** Drops every slot of the split sources (end of a test file: a slot left behind keeps WAL forever). */
export async function dropSplitSourceSlots(): Promise<void> {
  await dropSlots(
    withDatabase(TEST_DATABASE_URL, 'postgres'),
    splitSources().map((s) => s.slot),
  );
}

/**
 * Forgets the pipeline's capture progress, of every source: a source of another layout left by an
 * earlier file would make the split sources join as a layout change (outbox/capture-layout.ts).
 */
export async function resetCaptureProgress(pipeline: pg.Pool): Promise<void> {
  await pipeline.query(`delete from pipeline.capture_progress`);
}

export { readerUrl, withClient };

/** A capture workflow per source (the split sources by default) on the file's task queue; resolves once all stream. */
export async function startCaptureWorkflows(
  client: Client,
  taskQueue: string,
  pipeline: pg.Pool,
  sources: CaptureSource[] = splitSources(),
  /** How long each run of a chain lasts before it continues as new (CHAIN_RUN_MS; default a minute). */
  runMs?: number,
): Promise<{ handles: WorkflowHandle<typeof captureWorkflow>[]; stop(): Promise<void> }> {
  const handles: WorkflowHandle<typeof captureWorkflow>[] = [];
  for (const s of sources) {
    const input: CaptureWorkflowInput = { source: s.name, intervalMs: 60_000, runMs, activityBudgetMs: 2_000 };
    handles.push(
      await client.workflow.start(captureWorkflow, {
        taskQueue,
        workflowId: `capture-${s.name}-${Date.now()}`,
        args: [input],
      }),
    );
  }
  // Changes before a slot exists are not in it: a test writes once both captures stream.
  await eventually(
    async () =>
      (await pipeline.query(`select count(*)::int as n from pipeline.capture_progress where covered_at is not null`))
        .rows[0].n === handles.length,
    20_000,
    'every capture streaming',
  );
  return {
    handles,
    async stop() {
      for (const h of handles) await h.signal(stopCaptureSignal);
      // ended: each activity was cancelled and wrote what it had read
      for (const h of handles) {
        const r = await h.result();
        if (r.outcome !== 'stopped') throw new Error(`capture ${h.workflowId} ended ${r.outcome}, not stopped`);
      }
    },
  };
}

/** Drops a source's slot while its capture may hold it, as a database team would: end the walsender, drop. */
export async function dropSlotUnderCapture(url: string, slot: string): Promise<void> {
  await eventually(
    () =>
      withClient(url, async (c) => {
        await c.query(
          `select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1 and active`,
          [slot],
        );
        await c.query(`select pg_drop_replication_slot($1)`, [slot]);
        return true;
      }),
    10_000,
    'the slot dropped',
  );
}
