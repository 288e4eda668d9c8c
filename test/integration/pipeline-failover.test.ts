/**
 * The pipeline database failing over to an asynchronous standby that lacks the drain's last cursor
 * commit and the change it applied (issue 23: "never a false fresh answer after a failover of any
 * database"). Under the trigger capture the pipeline database is the source too, so the standby
 * also lacks the source transaction: the store holds a restock this history never had. The
 * database is a server of the test's own with a streaming standby (test/support/private-postgres.ts),
 * reached through a stable address (a TCP proxy, as DNS or a virtual IP gives).
 *
 * The standby is stopped first, so it surely lacks what follows; then the restock is committed and
 * drained, the primary dies, the standby is promoted and hands out transaction ids past the batch's
 * claimed snapshot. The drain must find the store ahead (activities/drain/adopted-chunk.ts) and
 * rebuild it: no read says fresh until the store equals the source again.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDatabase, migrate } from '../../db/migrate';
import { compareSnapshots } from '../../reconcile/compare';
import { sourceFeatures } from '../../reconcile/source-features';
import { storeFeatures } from '../../reconcile/store-features';
import { activitiesFor } from '../support/activities';
import { backfillEverything } from '../support/backfill';
import { pipelineClients, resetState, storeReader, testClients, type TestClients } from '../support/env';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy';
import { recordingDivergences } from '../support/metrics';
import { PrivatePostgres } from '../support/private-postgres';
import { DRAIN } from '../support/cursor';
import { FIELD } from '../../store/names';

const DB = 'fresh_badges';
const owner = 'pipeline-failover-test';

let primary: PrivatePostgres;
let standby: PrivatePostgres;
let address: FaultProxy;
let c: TestClients;

beforeAll(async () => {
  primary = await PrivatePostgres.create('pipeline-primary');
  await ensureDatabase(primary.url(DB));
  const admin = new pg.Client({ connectionString: primary.url(DB) });
  await admin.connect();
  await migrate(admin);
  await admin.end();
  standby = await primary.standby();
  address = await startFaultProxy({ host: '127.0.0.1', port: primary.port });
  c = testClients({ DATABASE_URL: `postgres://postgres@127.0.0.1:${address.port}/${DB}` });
}, 120_000);

afterAll(async () => {
  await c?.close();
  await address?.close();
  await standby?.destroy();
  await primary?.destroy();
});

/** Whether the standby has replayed everything the primary has written so far. */
async function standbyCaughtUp(): Promise<boolean> {
  const at = async (url: string, sql: string) => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      return (await client.query<{ lsn: string }>(sql)).rows[0]!.lsn;
    } finally {
      await client.end();
    }
  };
  const written = await at(primary.url(DB), `select pg_current_wal_lsn()::text as lsn`);
  const replayed = await at(standby.url(DB), `select pg_last_wal_replay_lsn()::text as lsn`);
  const lsn = (s: string) => {
    const [hi, lo] = s.split('/');
    return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
  };
  return lsn(replayed) >= lsn(written);
}

describe('the pipeline database failing over to an asynchronous standby', () => {
  it('a drained change the standby lacks, with the drain commit: found, rebuilt, never read as fresh', async () => {
    const { metrics, divergences } = recordingDivergences();
    const acts = activitiesFor({ ...pipelineClients(c), metrics });
    await resetState(c);
    await acts.acquireDrainLease({ owner });
    await c.pool.query(
      `insert into shop.fulfillment_centers values ('F1', 'R1', 100, now()), ('F2', 'R1', 100, now())`,
    );
    await c.pool.query(`insert into shop.region_fc values ('R1', 'F1', 1), ('R1', 'F2', 2)`);
    await c.pool.query(`insert into shop.skus (sku_id, title, lifecycle) values ('RESTOCK', 't', 'active')`);
    await c.pool.query(`insert into shop.inventory values ('RESTOCK', 'F1', 0, 0, now())`);
    for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') break;
    await backfillEverything(acts, 'pipeline-failover-fill');
    for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') break;
    const reader = storeReader(c, 60_000);
    expect(await reader.getBadge('R1', 'RESTOCK')).toMatchObject({ reason: 'out_of_stock', stale: false });

    // The standby has all of that, then stops receiving (as an asynchronous one lagging behind).
    for (let i = 0; i < 200 && !(await standbyCaughtUp()); i++) await new Promise((r) => setTimeout(r, 50));
    expect(await standbyCaughtUp()).toBe(true);
    await standby.stop('fast');

    // The restock, captured by its trigger and drained: the store promises it.
    await c.pool.query(`update shop.inventory set on_hand = 40 where sku_id = 'RESTOCK'`);
    expect(await acts.drainBatch({ owner })).toMatchObject({ outcome: 'applied', rows: 1 });
    expect(await reader.getBadge('R1', 'RESTOCK')).toMatchObject({ reason: 'eligible', stale: false });

    // The primary dies; the standby is promoted and takes the address.
    await primary.stop('immediate');
    await standby.start();
    await standby.promote();
    address.retarget({ host: '127.0.0.1', port: standby.port });
    // New transactions take ids past the batch's claimed snapshot: the claim looks current.
    for (let i = 0; i < 50; i++) await c.pool.query(`select pg_current_xact_id()`);
    const source = await c.pool.query<{ on_hand: number }>(
      `select on_hand from shop.inventory where sku_id = 'RESTOCK'`,
    );
    expect(source.rows[0]!.on_hand).toBe(0); // this history never had the restock

    // The case the chunk record is for: the store claims the cursor's own batch, and the claimed
    // snapshot is no longer newer than what the database hands out.
    const [claimedBatch, claimedTarget] = await c.redis.hmget(
      c.keys.partitions[0]!.pos,
      FIELD.claimedBatch,
      FIELD.claimedTarget,
    );
    const cursor = await c.pool.query<{ batch: string; now: string }>(
      `select batch::text, pg_current_xact_id()::text as now from pipeline.consumer_offsets where consumer = $1`,
      [DRAIN],
    );
    expect(cursor.rows[0]!.batch).toBe(claimedBatch);
    expect(BigInt(cursor.rows[0]!.now)).toBeGreaterThan(BigInt(claimedTarget!.split(':')[1]!));

    const r = await acts.drainBatch({ owner });
    expect(r).toMatchObject({ outcome: 'repaired', storeIncomplete: true });
    expect(divergences).toEqual(['ahead']);
    expect((await reader.getBadge('R1', 'RESTOCK')).stale).toBe(true);

    // backfill-auto's work: the store equals this history's source, and reads are fresh again.
    for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') break;
    await backfillEverything(acts, 'pipeline-failover-refill');
    for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') break;
    expect(compareSnapshots(await sourceFeatures(c.pool), await storeFeatures(c.redis, c.keys))).toEqual([]);
    expect(await reader.getBadge('R1', 'RESTOCK')).toMatchObject({ reason: 'out_of_stock', stale: false });
  });
});
