/**
 * Compaction against the real services: it removes only what every consumer has committed and
 * what is past retention, never an uncommitted or unapplied change, and is safe while the drain runs.
 */
import { LIFECYCLE_FIELD } from '../../store/keys';
import { restoreCursorRow, rewindCursor, saveCursorRow } from '../support/cursor';
import { LOGICAL_RUN, shopSession, trafficTarget } from '../support/logical-run';
import { describe, expect, it } from 'vitest';
import { usePipeline } from '../support/pipeline-fixture';
import { MockActivityEnvironment } from '@temporalio/testing';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { readOutboxFloor } from '../../outbox';
import { pruneDeadLetters } from '../../activities/compaction/prune-outbox';
import path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { createActivities } from '../../activities';
import { dumpStore, restoreStore } from '../support/redis-file';
import { compareSnapshots } from '../../reconcile/compare';
import { sourceFeatures } from '../../reconcile/source-features';
import { storeFeatures } from '../../reconcile/store-features';
import { CatalogueSize, seedCatalogue } from '../../simulator/catalogue';
import { runTraffic } from '../../simulator/traffic';
import { compactionWorkflow, type CompactionInput } from '../../workflows';
import { drainSettled, eventually, pipelineClients, startDrain } from '../support/env';
import { captureSources } from '../../capture/sources';
import { awaitChunk } from '../../capture/watermark-read';
import {
  CHURNING_TABLES,
  maintainPipelineTables,
  maintenanceStatements,
} from '../../activities/compaction/vacuum-tables';

const owner = 'compaction-test';
const f = usePipeline('compaction', {
  config: { COMPACTION_CHUNK: '100', COMPACTION_MAX_ROWS: '1000' },
  lease: owner,
  worker: true,
});
const { c, acts, taskQueue } = f;

const count = async (sql = 'select count(*)::int as n from pipeline.outbox') =>
  (await c.pool.query(sql)).rows[0].n as number;
async function drainAll() {
  for (;;) if ((await acts.drainBatch({ owner })).outcome !== 'applied') return;
}
async function addSkus(from: number, n: number) {
  for (let i = from; i < from + n; i++)
    await c.pool.query(`insert into shop.skus (sku_id, title, lifecycle) values ($1, 't', 'active')`, [`K${i}`]);
}
const compaction = (input: CompactionInput) =>
  f.temporal.client.workflow.execute(compactionWorkflow, {
    taskQueue,
    workflowId: `compaction-test-${Date.now()}`,
    args: [input],
  });

describe('outbox compaction', () => {
  it('deletes only committed rows past the retention, in bounded chunks', async () => {
    await addSkus(0, 250);
    await drainAll();
    await c.pool.query(`update pipeline.outbox set created_at = now() - interval '3 days' where id <= 200`); // old enough
    await addSkus(250, 10); // not applied yet: must stay even though compaction runs
    const r = await acts.compactOutbox({ retentionMs: 48 * 3_600_000 });
    expect(r.deleted).toBe(200);
    expect(await count()).toBe(60);
    expect(await count('select min(id)::int as n from pipeline.outbox')).toBe(201);
    // bounded: maxRows stops a run early and says there is more
    await c.pool.query(`update pipeline.outbox set created_at = now() - interval '3 days'`);
    await drainAll();
    const bounded = await acts.compactOutbox({ retentionMs: 1000, maxRows: 30 });
    expect(bounded).toMatchObject({ deleted: 30, more: true });
  });

  // One bounded prune per run (COMPACTION_MAX_ROWS, 1,000 here) kept up with about 555 changes/s
  // at the defaults, and the outbox grew for good above that: a run prunes again while rows are
  // left, up to a bound it reports.
  it('a run prunes in calls of COMPACTION_MAX_ROWS while rows are left, up to its bound', async () => {
    await c.pool.query(
      `insert into shop.skus (sku_id, title, lifecycle) select 'K' || g, 't', 'active' from generate_series(1, 3500) g`,
    );
    await drainAll();
    await c.pool.query(`update pipeline.outbox set created_at = now() - interval '3 days'`);
    const bounded = await compaction({ maxCalls: 2 });
    expect(bounded.outbox).toMatchObject({ deleted: 2000, calls: 2, more: true });
    expect(await count()).toBe(1500);
    const rest = await compaction({});
    expect(rest.outbox).toMatchObject({ deleted: 1500, calls: 2, more: false });
    expect(await count()).toBe(0);
  });

  // The index entries of the rows a run deletes stay until its VACUUM: a chunk starting at the
  // outbox's beginning walked all of them again, and later calls of a run slowed down.
  it('a prune call goes on after the row the call before it ended at', async () => {
    await addSkus(0, 30);
    await drainAll();
    await c.pool.query(`update pipeline.outbox set created_at = now() - interval '3 days'`);
    const positions = async () =>
      (await c.pool.query(`select txid::text, id::text from pipeline.outbox o order by o.txid, o.id`)).rows;
    const rows = await positions();
    expect(rows).toHaveLength(30);
    expect(await acts.pruneOutboxRows({ maxRows: 10 })).toMatchObject({ deleted: 10, more: true, after: rows[9] });
    // from a position given: what lies before it is not looked at
    expect(await acts.pruneOutboxRows({ after: rows[19] })).toMatchObject({
      deleted: 10,
      more: false,
      after: rows[29],
    });
    expect(await positions()).toEqual(rows.slice(10, 20));
  });

  // The floor a prune records was the lowest cursor's, while rows younger than the retention stay:
  // a Redis restored from a file written before the run, its position below that floor and its
  // rows all still in the outbox, was rebuilt from the sources instead of re-delivered.
  it('records a floor no higher than the transactions older than the retention', async () => {
    await drainAll();
    await c.pool.query('delete from pipeline.outbox'); // (applied: what tests before left)
    await addSkus(0, 10);
    await drainAll();
    // these changes, and the drain snapshots that applied them, are 3 days old
    await c.pool.query(`update pipeline.outbox set created_at = now() - interval '3 days'`);
    await c.pool.query(`update pipeline.drain_snapshots set applied_at = now() - interval '3 days'`);
    await addSkus(10, 10); // young: they stay
    await drainAll();
    const young = await c.pool.query<{ txid: string }>(
      `select min(txid)::text as txid from pipeline.outbox where created_at > now() - interval '1 hour'`,
    );
    expect(await acts.pruneOutboxRows({})).toMatchObject({ deleted: 10, more: false });
    expect(await count()).toBe(10);
    const floor = async () =>
      BigInt((await c.pool.query<{ below: string }>(`select below::text from pipeline.outbox_floor`)).rows[0]!.below);
    expect(await floor()).toBeLessThanOrEqual(BigInt(young.rows[0]!.txid));
    // the run's end prunes the drain's log past the retention; a run after a quiet hour (nothing
    // logged since) still finds the snapshot that bounds its floor
    await acts.finishCompaction({ outboxPruned: true });
    await acts.pruneOutboxRows({});
    expect(await floor()).toBeLessThanOrEqual(BigInt(young.rows[0]!.txid));
  });

  // With no drain snapshot older than the retention (a young install), each run's last prune
  // chunk read every applied row to find none old enough: the oldest snapshot now bounds it.
  it('on an install younger than the retention, the oldest drain snapshot bounds what a prune reads', async () => {
    await drainAll();
    await c.pool.query('delete from pipeline.outbox'); // (applied: what tests before left)
    await c.pool.query('delete from pipeline.drain_snapshots'); // the install's log starts now
    await addSkus(0, 10); // written before the drain's first snapshot
    await drainAll();
    await addSkus(10, 10); // after it
    await drainAll();
    // as if all were past the retention (only the first ten can be: written before any snapshot)
    await c.pool.query(`update pipeline.outbox set created_at = now() - interval '3 days'`);
    expect(await acts.pruneOutboxRows({})).toMatchObject({ deleted: 10, more: false });
    expect(await count()).toBe(10);
  });

  // A drain pass that finds the store behind decides to rewind its cursor only while the outbox
  // still holds what it re-delivers (outbox_floor); a prune running meanwhile must not delete it.
  // A retried letter is what compaction applies again when a Redis back from an older file lost
  // its retry (activities/dead-letters/reapply.ts): kept that long whatever DEAD_LETTER_RETENTION_D.
  it('prunes settled dead letters past the retention, but a retried one not within the re-apply window', async () => {
    await c.pool.query('delete from pipeline.dead_letters');
    const letter = (n: number, settled: string) =>
      c.pool.query(
        `insert into pipeline.dead_letters (consumer, outbox_txid, outbox_id, tbl, op, key, error, retried_at, discarded_at)
         values ('test', '1'::xid8, $1, 'skus', 'U', $2, 'x', ${settled})`,
        [n, `S${n}`],
      );
    await letter(1, `now() - interval '2 days', null`); // retried 2 days ago: kept (window 6 days)
    await letter(2, `now() - interval '7 days', null`); // retried 7 days ago: pruned
    await letter(3, `null, now() - interval '2 days'`); // discarded 2 days ago: pruned
    await letter(4, `null, null`); // waiting: kept
    expect(await pruneDeadLetters(c.pool, 1)).toBe(2);
    const left = await c.pool.query(`select key from pipeline.dead_letters order by key`);
    expect(left.rows.map((r) => r.key)).toEqual(['S1', 'S4']);
    await c.pool.query('delete from pipeline.dead_letters');
  });

  // pruneChunks had no caller: every re-read through the capture (repairs, rebuilds and replays under
  // capture from the WAL) left its row in pipeline.capture_chunks for good.
  it('prunes capture chunks done a day ago, and open ones a reader left a day ago; a waiting reader reads again', async () => {
    await c.pool.query('delete from pipeline.capture_chunks');
    const chunk = async (label: string, state: string, made: string, done: string | null) =>
      (
        await c.pool.query(
          `insert into pipeline.capture_chunks (source, tbl, keys, state, created_at, done_at)
           values ('inventory', 'inventory', array[$1], $2, now() - $3::interval, now() - $4::interval) returning id::text`,
          [label, state, made, done],
        )
      ).rows[0].id as string;
    await chunk('written', 'written', '30 hours', '25 hours');
    await chunk('abandoned', 'abandoned', '30 hours', '25 hours');
    const left = await chunk('open', 'open', '25 hours', null); // its reader died
    await chunk('read', 'read', '25 hours', null);
    await chunk('written lately', 'written', '30 hours', '1 hour');
    await chunk('open lately', 'open', '1 hour', null);
    await chunk('read lately', 'read', '1 hour', null);
    expect((await acts.finishCompaction({ outboxPruned: false })).captureChunks).toBe(4);
    const kept = await c.pool.query(`select keys[1] as label from pipeline.capture_chunks order by label`);
    expect(kept.rows.map((r) => r.label)).toEqual(['open lately', 'read lately', 'written lately']);
    // a reader still waiting on a pruned chunk: never to be written, read again (null), not waited on
    const source = captureSources(c.config)[0]!;
    expect(await awaitChunk({ source, pipeline: c.workerPool }, { id: left, highLsn: '0/0' })).toBeNull();
  });

  // Only the outbox was vacuumed, and only once rows were pruned: on a fresh install (nothing past
  // OUTBOX_RETENTION_H) it was never ANALYZEd, and the tables every batch, lease renewal and capture
  // write updates were never vacuumed (no autovacuum here). As the worker's role: it owns them.
  it('every run ANALYZEs the outbox and VACUUMs the tables with churn, even with nothing to prune', async () => {
    await addSkus(0, 20);
    await drainAll();
    const stats = async () =>
      (
        await c.pool.query(
          `select schemaname || '.' || relname as t, vacuum_count::int as v, analyze_count::int as a
             from pg_stat_user_tables where schemaname = 'pipeline'`,
        )
      ).rows.reduce((m, r) => m.set(r.t, { v: r.v, a: r.a }), new Map<string, { v: number; a: number }>());
    const before = await stats();
    const run = await compaction({}); // nothing is 48 hours old
    expect(run.outbox).toMatchObject({ deleted: 0, tables: { done: maintenanceStatements(false), warnings: [] } });
    await eventually(
      async () => {
        const after = await stats();
        const counted = (t: string) => ({
          v: after.get(t)!.v - before.get(t)!.v,
          a: after.get(t)!.a - before.get(t)!.a,
        });
        expect(counted('pipeline.outbox')).toEqual({ v: 0, a: 1 });
        for (const t of CHURNING_TABLES) expect([t, counted(t)]).toEqual([t, { v: 1, a: 1 }]);
        return true;
      },
      5_000,
      'statistics to count the VACUUMs',
    );
  });

  // A big outbox's VACUUM runs for minutes without a word: the activity heartbeats meanwhile
  // (timeout: a minute), on a connection of its own (not one the drain needs), and a statement past
  // its timeout is reported, not failed and retried for as long again.
  it('heartbeats while a VACUUM runs, on its own connection, and reports one that ran out of time', async () => {
    const vacuumSessions = async (waitingForALock = false) =>
      (
        await c.pool.query(
          `select 1 from pg_stat_activity where application_name = 'fresh-badges-vacuum'
              and (not $1 or wait_event_type = 'Lock')`,
          [waitingForALock],
        )
      ).rowCount;
    const vacuumWaiting = () => eventually(async () => (await vacuumSessions(true)) === 1, 5_000, 'a VACUUM waiting');
    const holder = await c.pool.connect();
    const lockLeases = async () => {
      await holder.query('begin');
      await holder.query('lock table pipeline.leases in share update exclusive mode'); // as a VACUUM of it would
    };
    try {
      await lockLeases();
      const beats: string[] = [];
      const heartbeat = (statement: string) => beats.push(statement);
      const vacuuming = maintainPipelineTables(c.workerPool, { outboxPruned: false, heartbeat, keepAliveMs: 50 });
      await vacuumWaiting();
      const leaseBeats = () => beats.filter((s) => s === 'vacuum (analyze) pipeline.leases').length;
      await eventually(async () => leaseBeats() >= 8, 10_000, 'heartbeats while the VACUUM waits');
      await holder.query('commit');
      expect(await vacuuming).toEqual({ done: maintenanceStatements(false), warnings: [] });
      await lockLeases();
      const timedOut = await maintainPipelineTables(c.workerPool, {
        outboxPruned: true,
        heartbeat,
        statementTimeoutMs: 2_000, // the locked table's VACUUM waits that long; any other is far quicker
      });
      expect(timedOut.warnings).toEqual([
        expect.stringMatching(/^vacuum \(analyze\) pipeline\.leases: .*statement_timeout/),
      ]);
      expect(timedOut.done).toEqual(maintenanceStatements(true).filter((s) => !s.endsWith('pipeline.leases')));
      // a cancelled activity (its worker shutting down) stops the statement, not only its wait for it
      await lockLeases();
      const stop = new AbortController();
      const cancelled = maintainPipelineTables(c.workerPool, { outboxPruned: false, heartbeat, signal: stop.signal });
      await vacuumWaiting();
      stop.abort(new Error('cancelled'));
      await expect(cancelled).rejects.toThrow('cancelled');
      await eventually(async () => !(await vacuumSessions()), 5_000, 'the VACUUM session to end');
    } finally {
      await holder.query('rollback').catch(() => undefined);
      holder.release();
    }
  });

  it('a prune waits for a drain pass deciding to rewind, then keeps what the rewound cursor needs', async () => {
    await addSkus(0, 20);
    await drainAll();
    await c.pool.query(`update pipeline.outbox set created_at = now() - interval '30 days'`);
    const pass = await c.pool.connect();
    try {
      await pass.query('begin');
      await readOutboxFloor(pass); // as the pass reads it before it rewinds (activities/drain/divergence.ts)
      await pass.query(
        `update pipeline.consumer_offsets set snap_from = '1:1:', snap_from_at = null, snap_to = null, snap_to_at = null, txid = '0', id = 0`,
      );
      let settled = false;
      const pruning = acts.compactOutbox({ retentionMs: 1000 }).finally(() => (settled = true));
      await sleep(500);
      expect(settled).toBe(false); // waits for the pass
      await pass.query('commit');
      expect((await pruning).deleted).toBe(0); // the rewound cursor needs every row
      expect(await count()).toBe(20);
    } finally {
      await pass.query('rollback').catch(() => undefined);
      pass.release();
    }
  });

  // By outbox transaction ids: capture from the WAL writes several source transactions in one
  // outbox transaction, so the count differs there; compaction itself does not depend on the capture.
  it.skipIf(LOGICAL_RUN)('keeps everything a consumer behind the retention has not committed', async () => {
    await addSkus(0, 50);
    await drainAll();
    // A consumer that has applied the first 10 rows (their transactions are below its snapshot's xmin).
    await c.pool.query(
      `insert into pipeline.consumer_offsets (consumer, snap_from) select 'laggard', (t || ':' || t || ':')::pg_snapshot from (select txid::text as t from pipeline.outbox where id = 11) x`,
    );
    await c.pool.query(`update pipeline.outbox set created_at = now() - interval '30 days'`);
    const r = await acts.compactOutbox({ retentionMs: 1000 });
    expect(r.deleted).toBe(10);
    expect(await count('select min(id)::int as n from pipeline.outbox')).toBe(11);
  });

  it('never loses a change of a transaction still open while compaction runs', async () => {
    const open = await shopSession(c.pool); // in the logical run, routed to the source databases
    try {
      await open.query('begin');
      await open.query(`insert into shop.skus (sku_id, title, lifecycle) values ('LATE', 't', 'paused')`);
      await addSkus(0, 20);
      await drainAll();
      await c.pool.query(`update pipeline.outbox set created_at = now() - interval '30 days'`); // cannot see LATE's row yet
      await acts.compactOutbox({ retentionMs: 0 });
      await open.query('commit');
      await drainAll();
      expect(await c.redis.hget(c.keys.sku('LATE'), LIFECYCLE_FIELD)).toMatch(/^p\|/);
      expect(await c.redis.hget(c.keys.sku('K19'), LIFECYCLE_FIELD)).toMatch(/^a\|/);
    } finally {
      await open.end();
    }
  });

  it('sweeps field tombstones only once no older change can still arrive', async () => {
    await c.pool.query(`insert into shop.fulfillment_centers values ('F1', 'R1', 1, now()), ('F2', 'R1', 1, now())`);
    await addSkus(0, 1);
    await c.pool.query(`insert into shop.inventory values ('K0', 'F1', 1, 0, now()), ('K0', 'F2', 1, 0, now())`);
    await c.pool.query(`delete from shop.inventory where fc_id = 'F1'`);
    await drainAll();
    expect(await c.redis.hget(c.keys.sku('K0'), 'F1')).toMatch(/^x\|/);
    // A consumer cursor back at the start: older changes are unapplied, the tombstone must stay.
    const saved = await saveCursorRow(c.pool);
    await rewindCursor(c.pool);
    expect((await acts.sweepTombstones({})).removed).toBe(0);
    await restoreCursorRow(c.pool, saved);
    const swept = await acts.sweepTombstones({});
    expect(swept.removed).toBe(1);
    expect(await c.redis.hgetall(c.keys.sku('K0'))).toEqual({
      [LIFECYCLE_FIELD]: expect.stringMatching(/^a\|/),
      F2: expect.stringMatching(/^1\|/),
    });
  });

  // A sweep of a big store takes longer than the activity's heartbeat timeout (1 minute): without
  // a heartbeat per page it would be failed and started again, for ever.
  it('the sweep heartbeats as it goes', async () => {
    await addSkus(0, 3);
    await drainAll();
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const { sweepTombstones } = createActivities(pipelineClients(c));
    await env.run(sweepTombstones, {});
    expect(beats.length).toBeGreaterThan(0);
    expect(beats[0]).toEqual({ visited: expect.any(Number), removed: 0 });
  });

  // Redis back from a file written before its last writes, and the drain has not run since: the
  // cursor in PostgreSQL says the changes older than the tombstone are applied, the store does not
  // hold them. The drain re-delivers them, an older image of the deleted row among them: the
  // tombstone is what refuses it, so the sweep must keep it until the store is back in step.
  it('keeps the tombstones of a store behind the drain cursor until the drain has re-delivered', async () => {
    await c.pool.query(`insert into shop.fulfillment_centers values ('F1', 'R1', 1, now())`);
    await addSkus(0, 1);
    await c.pool.query(`insert into shop.inventory values ('K0', 'F1', 1, 0, now())`);
    await c.pool.query(`delete from shop.inventory where fc_id = 'F1'`);
    await drainAll();
    expect(await c.redis.hget(c.keys.sku('K0'), 'F1')).toMatch(/^x\|/);
    const file = await dumpStore(c.redis, c.keys);
    await addSkus(1, 3); // later batches the file does not hold
    await drainAll();
    expect(await c.redis.exists(c.keys.sku('K3'))).toBe(1);
    await restoreStore(c.redis, c.keys, file);

    expect((await acts.sweepTombstones({})).removed).toBe(0);
    expect(await c.redis.hget(c.keys.sku('K0'), 'F1')).toMatch(/^x\|/);
    // finds the store behind (outcome 'repaired': the cursor rewound to the store's claimed batch,
    // which was an idle one), re-delivers it (idle), then the batches after it
    for (let idle = 0; idle < 2;) idle = (await acts.drainBatch({ owner })).outcome === 'idle' ? idle + 1 : 0;
    expect(await c.redis.exists(c.keys.sku('K3'))).toBe(1);
    expect((await acts.sweepTombstones({})).removed).toBe(1);
    expect(await c.redis.hexists(c.keys.sku('K0'), 'F1')).toBe(0);
  });
});

describe('compaction while the drain runs', () => {
  it('under simulator load, with compaction runs in between, the store ends equal to the source', async () => {
    const { temporal } = f;
    await acts.releaseDrainLease({ owner });
    const drain = await startDrain(temporal.client, c.config, {
      taskQueue,
      workflowId: `drain-compaction-${Date.now()}`,
      args: [{ intervalMs: 600_000, idleWaitMs: 200 }],
    });
    try {
      const size: CatalogueSize = { skus: 300, fcs: 6, regions: 3, fcsPerRegion: 2, fcsPerSku: 2 };
      await seedCatalogue(c.pool, size);
      const traffic = runTraffic(trafficTarget(c.pool), {
        rate: 1500,
        durationMs: 4000,
        connections: 4,
        seed: 5,
        size,
      });
      let runs = 0;
      let deleted = 0;
      while (runs < 8) {
        const run = await temporal.client.workflow.start(compactionWorkflow, {
          taskQueue,
          workflowId: `compaction-test-${Date.now()}-${runs++}`,
          args: [{ retentionMs: 0 }],
        });
        deleted += (await run.result()).outbox.deleted;
        // RECORD_HISTORIES=<name>: test/histories/compaction-<name>.json, replayed by replay.test.ts
        // (keep the old ones: they prove that runs started by older code still replay)
        if (process.env.RECORD_HISTORIES && runs === 8)
          fs.writeFileSync(
            path.join(__dirname, '..', 'histories', `compaction-${process.env.RECORD_HISTORIES}.json`),
            historyToJSON(await run.fetchHistory()),
          );
      }
      await traffic;
      await eventually(
        async () => compareSnapshots(await sourceFeatures(c.pool), await storeFeatures(c.redis, c.keys)).length === 0,
        30_000,
        'store to match the source',
      );
      expect(deleted).toBeGreaterThan(0);
    } finally {
      await drain.terminate('test over').catch(() => undefined);
      await drainSettled(c);
    }
  });
});
