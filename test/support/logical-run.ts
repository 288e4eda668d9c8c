/**
 * The logical run of the correctness suite (vitest.logical.config.mts, TEST_CAPTURE_MODE=logical):
 * the same test files, with the shop tables in two source databases of their own (inventory and
 * orders, test/support/split-sources.ts), the pipeline's database apart, and every change reaching
 * the outbox by capture from the WAL.
 *  - The test's own SQL goes through a routed pool (test/support/routed-pool.ts) to the database
 *    holding the tables it names.
 *  - Each test file's process runs one capture per source for as long as it has state
 *    (resetState starts it; closing the clients stops it).
 *  - `captureCaughtUp` waits until every change committed on a source so far is in the outbox: an
 *    activity-level drain call does that first, so "write, then drain" means what it means with the
 *    trigger capture, where the write itself put the change in the outbox.
 *  - A reset empties the sources and moves each slot past the emptying (nothing of it reaches the
 *    outbox), and forgets the capture's progress.
 */
import pg from 'pg';
import { CaptureSession } from '../../capture/capture-loop';
import { parseLsn } from '../../capture/pgoutput';
import { readCaptureProgress } from '../../outbox/capture-progress';
import { withClient } from '../../scripts/lib/source-databases';
import type { ShopDatabases } from '../../simulator/traffic';
import { RoutedPool } from './routed-pool';
import { TEST_DATABASE_URL } from './test-urls';
import { SPLIT_SOURCE_CONFIG, splitSources, TEST_INVENTORY_URL, TEST_ORDERS_URL } from './split-sources';

export const LOGICAL_RUN = process.env.TEST_CAPTURE_MODE === 'logical';

/** The logical run's configuration (empty in the default run). */
export const LOGICAL_RUN_CONFIG: Record<string, string> = LOGICAL_RUN
  ? { ...SPLIT_SOURCE_CONFIG, CAPTURE_TICK_MS: '20' }
  : {};

/** The owner's URL of each source (the capture itself reads as the reader role). */
const OWNER_URL: Record<string, string> = { inventory: TEST_INVENTORY_URL, orders: TEST_ORDERS_URL };

class FileCapture {
  private abort: AbortController | null = null;
  private loops: Promise<void>[] = [];
  /** Where the outbox is: set while this capture runs, or after handOver (the product's captures). */
  private pipeline: pg.Pool | null = null;

  get running(): boolean {
    return this.abort !== null;
  }

  /**
   * Stops this file's capture and leaves the slots to the product's own capture workflows (a file
   * that runs the pipeline as an operator would: schedules, `ops resume`, `npm start`). `caughtUp`
   * then waits for their progress, read through `pipeline`.
   */
  async handOver(pipeline: pg.Pool): Promise<void> {
    await this.stop();
    this.pipeline = pipeline;
  }

  /** A capture per source into `pipeline` (the worker's role), until stop(); resolves once each streams. */
  async start(pipeline: pg.Pool): Promise<void> {
    if (this.abort) return;
    this.pipeline = pipeline;
    const abort = new AbortController();
    this.abort = abort;
    this.loops = splitSources().map((source) => this.loop(source, pipeline, abort.signal));
    await this.caughtUp();
  }

  private async loop(
    source: ReturnType<typeof splitSources>[number],
    pipeline: pg.Pool,
    signal: AbortSignal,
  ): Promise<void> {
    while (!signal.aborted) {
      let session: CaptureSession | null = null;
      try {
        session = await CaptureSession.open(source, pipeline);
        while (!signal.aborted && session.healthy) await session.run({ tickMs: 20, budgetMs: 5_000, signal });
      } catch (err) {
        if (!signal.aborted) console.warn(`test capture of ${source.name}: ${(err as Error).message}; again`);
        await new Promise((done) => setTimeout(done, 200));
      } finally {
        await session?.close().catch(() => {});
      }
    }
  }

  /** Stops the capture if it writes through `pipeline` (the clients being closed). */
  async stopIfWriting(pipeline: pg.Pool): Promise<void> {
    if (this.pipeline === pipeline) await this.stop();
  }

  async stop(): Promise<void> {
    this.abort?.abort();
    await Promise.all(this.loops);
    this.abort = null;
    this.loops = [];
    this.pipeline = null;
  }

  /**
   * Waits until every change committed on each source before the call is in the outbox. Every
   * activity call of the logical run waits here first (test/support/activities.ts), hundreds of
   * times in a file: the sources' positions are asked on connections kept open (a connection of
   * its own each time cost about 11 ms per source, a third of the wait), both at once.
   */
  async caughtUp(timeoutMs = 20_000): Promise<void> {
    const pipeline = this.pipeline;
    if (!pipeline) return; // neither this capture nor a handed-over one: nothing to wait for
    const deadline = Date.now() + timeoutMs;
    const sources = splitSources();
    const positions = await Promise.all(
      sources.map(async (source) =>
        parseLsn((await positionPool(source.name).query(`select pg_current_wal_insert_lsn()::text as l`)).rows[0].l),
      ),
    );
    for (const [i, source] of sources.entries()) {
      for (;;) {
        const p = await readCaptureProgress(pipeline, source.name);
        if (p && p.lsn >= positions[i]! && p.coveredAtMs !== null) break;
        if (Date.now() > deadline)
          throw new Error(`the test capture of ${source.name} did not reach the source's position in ${timeoutMs} ms`);
        await new Promise((done) => setTimeout(done, 5));
      }
    }
  }
}

/** A connection per source, kept while in use, for its WAL position (FileCapture.caughtUp). */
const positionPools = new Map<string, pg.Pool>();
function positionPool(source: string): pg.Pool {
  let pool = positionPools.get(source);
  if (!pool) {
    // one connection; closed after a second unused, and never keeps the process alive
    pool = new pg.Pool({
      connectionString: OWNER_URL[source]!,
      max: 1,
      idleTimeoutMillis: 1_000,
      allowExitOnIdle: true,
    });
    pool.on('error', () => {}); // a connection lost while idle: the next query opens another
    positionPools.set(source, pool);
  }
  return pool;
}

/**
 * A session of the test's own on "the shop": a client of its own on the test database, or in the
 * logical run a routed session whose table-less statements reach `home` (test/support/routed-pool.ts).
 */
export async function shopSession(pool: pg.Pool, home: 'inventory' | 'orders' = 'inventory'): Promise<pg.Client> {
  if (pool instanceof RoutedPool) return pool.session(home);
  const s = new pg.Client({ connectionString: TEST_DATABASE_URL, application_name: 'fresh-badges-test' });
  await s.connect();
  return s;
}

/** Where the simulator writes: in the logical run each service's tables into its own source database. */
export function trafficTarget(pool: pg.Pool): ShopDatabases {
  return pool instanceof RoutedPool ? { inventory: pool.inventory, orders: pool.orders } : pool;
}

/** This test file's capture (one at a time: each file starts it in resetState and stops it when it closes its clients). */
export const fileCapture = new FileCapture();

/** Resolves once every change committed so far is in the outbox (at once with the trigger capture). */
export const captured = (): Promise<void> => fileCapture.caughtUp();

/**
 * In the logical run, hands the slots to the product's capture workflows (started by the
 * schedules the file creates, `ops resume` or `npm start`); no-op in the default run. Call after
 * resetState: the file's capture stops, and `captured()` waits for the product's progress.
 */
export async function useProductCapture(c: { pool: pg.Pool; workerPool?: pg.Pool }): Promise<void> {
  if (!(c.pool instanceof RoutedPool)) return;
  await fileCapture.handOver(c.workerPool ?? c.pool.pipeline);
}

/**
 * Empties both sources and moves each slot past the emptying, with the capture stopped; forgets
 * the capture's progress and chunks. The caller empties the pipeline's tables and starts it again.
 */
export async function resetSources(pipelineOwner: pg.Pool): Promise<void> {
  await fileCapture.stop();
  await withClient(TEST_INVENTORY_URL, (c) =>
    c.query(`truncate shop.inventory, shop.region_fc, shop.skus, shop.fulfillment_centers restart identity`),
  );
  await withClient(TEST_ORDERS_URL, (c) => c.query(`truncate shop.orders restart identity`));
  for (const source of splitSources())
    await withClient(OWNER_URL[source.name]!, async (c) => {
      const slot = await c.query(`select active from pg_replication_slots where slot_name = $1`, [source.slot]);
      if (!slot.rowCount) return; // created by the capture's first start
      for (
        let i = 0;
        i < 100 &&
        (await c.query(`select active from pg_replication_slots where slot_name = $1`, [source.slot])).rows[0]?.active;
        i++
      )
        await new Promise((done) => setTimeout(done, 50));
      await c.query(`select pg_replication_slot_advance($1, pg_current_wal_insert_lsn())`, [source.slot]);
    });
  // every source's: one of another layout would make these join as a layout change (outbox/capture-layout.ts)
  await pipelineOwner.query(`delete from pipeline.capture_progress`);
  await pipelineOwner.query(`truncate pipeline.capture_chunks`);
}
