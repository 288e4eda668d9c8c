/**
 * Reading source rows into the outbox between watermarks (capture/watermark-read.ts), raced against
 * concurrent writers of the same keys, on a real source database and a real capture:
 *  - property (fast-check: random writes, deletes and re-inserts of a few inventory rows, random
 *    chunk reads with deleteAbsent, all at once): every refresh (R) the capture writes equals the
 *    row as the stream had it at that point, and every delete it writes from a chunk is of a row
 *    the stream had deleted; so a chunk never lets an older image win;
 *  - a SKU's rebuild (refreshSku) re-reads its skus row and all its inventory rows, also while a
 *    writer keeps the stream busy for longer than the capture keeps history;
 *  - a chunk whose low watermark the capture did not see (it started in between) is abandoned and
 *    read again;
 *  - a SKU's re-read behind a stalled capture fails after its wait, and its retry waits on the
 *    chunks handed over instead of reading again; a chunk whose watermark the capture passed
 *    without writing it (its WAL skipped) is read again;
 *  - with no capture running, a read fails with a message that says so.
 */
import fc from 'fast-check';
import pg from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCapture } from '../../capture/capture-loop';
import { sourceRowsFor } from '../../capture/source-rows';
import { awaitChunk, ChunkNotWrittenYetError, readThroughWatermarks } from '../../capture/watermark-read';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createLifecycleActivities, handedChunksOf } from '../../activities/lifecycle';
import { encodeWatermark, TICK_PREFIX } from '../../capture/ticks';
import { HISTORY_MS, HORIZON_MS } from '../../capture/watermark-windows';
import { chunkState, createChunk, storeChunkRead } from '../../outbox/capture-chunks';
import { setCaptureSwitch } from '../../outbox/capture-progress';
import { createPool } from '../../db/pool';
import { testConfig, TEST_DATABASE_URL } from '../support/env';
import {
  createSplitSources,
  dropSplitSourceSlots,
  resetCaptureProgress,
  SPLIT_SOURCE_CONFIG,
  splitSources,
  TEST_INVENTORY_URL,
} from '../support/split-sources';

const SKUS = ['A', 'B', 'C', 'D'];
const FCS = ['F1', 'F2'];
const KEYS = SKUS.flatMap((s) => FCS.map((f) => `${s}|${f}`));

type Write = { key: string; kind: 'set' | 'delete'; value: number; pauseMs: number };

const writeArb: fc.Arbitrary<Write> = fc.record({
  key: fc.constantFrom(...KEYS),
  kind: fc.constantFrom('set', 'set', 'set', 'delete'),
  value: fc.integer({ min: 0, max: 1000 }),
  pauseMs: fc.constantFrom(0, 0, 0, 1, 2),
});

describe('reading source rows between watermarks', () => {
  const pipeline = createPool(TEST_DATABASE_URL, 10);
  const source = createPool(TEST_INVENTORY_URL, 10);
  const inventory = splitSources().find((s) => s.name === 'inventory')!;
  let stopCapture: (() => Promise<void>) | null = null;

  /** A capture of the inventory source in the background (as the capture workflow runs it). */
  const startCapture = async () => {
    const abort = new AbortController();
    const done = runCapture({ source: inventory, pipeline, tickMs: 20, signal: abort.signal });
    stopCapture = async () => {
      abort.abort();
      await done;
      stopCapture = null;
    };
    await coveredAfter(Date.now());
  };
  const coveredAfter = async (at: number) => {
    for (let i = 0; i < 500; i++) {
      const r = await pipeline.query(
        `select (extract(epoch from covered_at) * 1000)::float8 as c from pipeline.capture_progress where source = 'inventory'`,
      );
      if (r.rows[0]?.c > at) return;
      await sleep(20);
    }
    throw new Error('capture did not cover the source in 10 s');
  };
  const maxId = async () =>
    Number((await pipeline.query(`select coalesce(max(id), 0) as m from pipeline.outbox`)).rows[0].m);
  /** Writes a chunk watermark into the source's WAL, as the reader of source `src` in capture `by` does. */
  const emitWatermark = (edge: 'low' | 'high', id: string, src = 'inventory', by = inventory.slot, token?: string) =>
    source.query(`select pg_logical_emit_message(true, $1, $2)`, [
      TICK_PREFIX,
      encodeWatermark(edge, id, src, by, token),
    ]);
  /**
   * A chunk of B|F1 between its watermarks, as source `src`'s reader in capture `by` writes it: its
   * outbox position before the high watermark with it. The capture has read past it on return.
   */
  const chunkOfB = async (src = 'inventory', by = inventory.slot) => {
    const { id } = await createChunk(pipeline, { source: src, tbl: 'inventory', keys: ['B|F1'] });
    await emitWatermark('low', id, src, by);
    const snap = (await source.query(`select pg_current_snapshot()::text as s`)).rows[0].s;
    await storeChunkRead(pipeline, id, snap, [
      { key: 'B|F1', image: { sku_id: 'B', fc_id: 'F1', on_hand: 1, reserved: 0 } },
    ]);
    const from = await maxId();
    await emitWatermark('high', id, src, by);
    await coveredAfter(Date.now());
    return { id, from };
  };
  /** The chunk was left as read, and nothing of it written (it is another capture's). */
  const leftAlone = async ({ id, from }: { id: string; from: number }) => {
    expect((await chunkState(pipeline, id)).state).toBe('read');
    expect((await pipeline.query(`select 1 from pipeline.outbox where id > $1 and op = 'R'`, [from])).rowCount).toBe(0);
    await pipeline.query(`delete from pipeline.capture_chunks where id = $1`, [id]);
  };

  beforeAll(async () => {
    await createSplitSources();
    await resetCaptureProgress(pipeline);
    await source.query(`insert into shop.fulfillment_centers select unnest($1::text[]), 'R1', 100, now()`, [FCS]);
    await source.query(`insert into shop.skus select unnest($1::text[]), 't', 'active', now()`, [SKUS]);
    await startCapture();
  }, 60_000);

  afterAll(async () => {
    await stopCapture?.();
    await dropSplitSourceSlots();
    await resetCaptureProgress(pipeline);
    await pipeline.end();
    await source.end();
  });

  async function write(w: Write): Promise<void> {
    const [sku, fcId] = w.key.split('|');
    if (w.kind === 'delete')
      await source.query(`delete from shop.inventory where sku_id = $1 and fc_id = $2`, [sku, fcId]);
    else
      await source.query(
        `insert into shop.inventory values ($1, $2, $3, 0, now())
         on conflict (sku_id, fc_id) do update set on_hand = excluded.on_hand`,
        [sku, fcId, w.value],
      );
    if (w.pauseMs) await sleep(w.pauseMs);
  }

  /**
   * Walks the outbox rows after `from` in order, keeping each key's state as the stream's own
   * changes leave it, and checks every row a chunk wrote against it.
   */
  async function checkChunkRows(from: number, initial: Map<string, number | null>): Promise<number> {
    const rows = (
      await pipeline.query<{ op: string; key: string; image: { on_hand?: number } }>(
        `select op, key, image from pipeline.outbox where id > $1 and tbl = 'inventory' order by id`,
        [from],
      )
    ).rows;
    const state = new Map(initial);
    let checked = 0;
    for (const r of rows) {
      if (r.op === 'R') {
        expect(r.image.on_hand, `refresh of ${r.key}: the row as the stream had it`).toBe(state.get(r.key));
        checked++;
      } else if (r.op === 'D' && state.get(r.key) === null) checked++;
      else if (r.op === 'D') state.set(r.key, null);
      else state.set(r.key, r.image.on_hand ?? null);
    }
    return checked;
  }

  it('a chunk never lets an older image win over a concurrent change (property)', async () => {
    let totalChecked = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(writeArb, { minLength: 50, maxLength: 150 }),
        fc.array(fc.subarray(KEYS, { minLength: 1 }), { minLength: 3, maxLength: 8 }),
        async (writes, chunks) => {
          const initial = new Map<string, number | null>(KEYS.map((k) => [k, null]));
          for (const r of (await source.query(`select sku_id || '|' || fc_id as k, on_hand from shop.inventory`)).rows)
            initial.set(r.k, r.on_hand);
          await coveredAfter(Date.now()); // the outbox holds everything before `from`
          const from = await maxId();
          let writing = true;
          const writers = (async () => {
            for (const w of writes) await write(w);
            writing = false;
          })();
          // Readers keep reading chunks (the subsets in turn, two at a time) for as long as the
          // writers write, so watermarks and writes interleave at every point.
          const reader = async (offset: number) => {
            for (let i = offset; writing || i < chunks.length; i += 2)
              await readThroughWatermarks(
                { source: inventory, pipeline, timeoutMs: 20_000 },
                { tbl: 'inventory', keys: chunks[i % chunks.length]!, deleteAbsent: true },
              );
          };
          const readers = Promise.all([reader(0), reader(1)]);
          await Promise.all([writers, readers]);
          await coveredAfter(Date.now());
          totalChecked += await checkChunkRows(from, initial);
        },
      ),
      { numRuns: 8 },
    );
    expect(totalChecked).toBeGreaterThan(20); // the chunks did write rows to check
  }, 120_000);

  it("re-reads a SKU's skus row and all its inventory rows (a rebuild)", async () => {
    await source.query(
      `insert into shop.inventory values ('A', 'F1', 7, 1, now()) on conflict (sku_id, fc_id) do update set on_hand = 7, reserved = 1`,
    );
    await source.query(
      `insert into shop.inventory values ('A', 'F2', 9, 0, now()) on conflict (sku_id, fc_id) do update set on_hand = 9`,
    );
    await coveredAfter(Date.now());
    const from = await maxId();
    const rows = sourceRowsFor(testConfig(SPLIT_SOURCE_CONFIG), pipeline);
    const r = await rows.refreshSku('A');
    expect(r.rows).toBe(3);
    const written = (
      await pipeline.query(`select tbl, op, key from pipeline.outbox where id > $1 and op = 'R' order by id`, [from])
    ).rows;
    expect(written).toEqual([
      { tbl: 'skus', op: 'R', key: 'A' },
      { tbl: 'inventory', op: 'R', key: 'A|F1' },
      { tbl: 'inventory', op: 'R', key: 'A|F2' },
    ]);
  }, 30_000);

  // Under steady traffic the capture's history drops its oldest transaction with each one that
  // arrives (HISTORY_MS of stream): a chunk must not be abandoned for that (every one was, and
  // rebuilds, repairs and backfills under load failed with "abandoned the chunk 3 times").
  it('reads chunks while a writer commits without pause for longer than the capture keeps history', async () => {
    let writing = true;
    let n = 0;
    const writer = (async () => {
      while (writing) await write({ key: 'D|F2', kind: 'set', value: n++ % 1000, pauseMs: 0 });
    })();
    try {
      await sleep(HISTORY_MS + 2_000); // the history is full: from now on it drops as it takes
      const rows = sourceRowsFor(testConfig(SPLIT_SOURCE_CONFIG), pipeline);
      for (let i = 0; i < 3; i++) expect((await rows.refreshSku('A')).rows).toBeGreaterThanOrEqual(1);
      expect(n).toBeGreaterThan(1_000); // the writer kept the stream busy throughout
    } finally {
      writing = false;
      await writer;
    }
  }, 60_000);

  // A read longer than the capture's horizon (the load sums of a big orders table, seconds of
  // scanning): its snapshot is older than the horizon by its high watermark. Judged against the
  // horizon of its low watermark it is kept; against the current one it was abandoned at every
  // try, and a refill never finished.
  it('keeps a chunk whose read took longer than the capture horizon, with the stream going on', async () => {
    await write({ key: 'A|F1', kind: 'set', value: 5, pauseMs: 0 });
    const lastChunk = Number(
      (await pipeline.query(`select coalesce(max(id), 0) as m from pipeline.capture_chunks`)).rows[0].m,
    );
    // the read blocks behind this lock after taking its snapshot; ticks go on committing meanwhile
    const locker = new pg.Client({ connectionString: TEST_INVENTORY_URL });
    await locker.connect();
    try {
      await locker.query('begin');
      await locker.query('lock table shop.inventory in access exclusive mode');
      const read = readThroughWatermarks(
        { source: inventory, pipeline, timeoutMs: 60_000 },
        {
          tbl: 'inventory',
          keys: ['A|F1'],
        },
      );
      await sleep(HORIZON_MS + 3_000);
      await locker.query('commit');
      expect((await read).written).toBe(1);
    } finally {
      await locker.end();
    }
    const chunks = await pipeline.query(`select state from pipeline.capture_chunks where id > $1 order by id`, [
      lastChunk,
    ]);
    expect(chunks.rows.map((r) => r.state)).toEqual(['written']); // at the first try
  }, 60_000);

  // While a hand-over from the trigger capture is under way (its marker not reached yet), the
  // triggers write the source's changes into the outbox themselves, some with lower ids than the
  // capture's: a chunk's rows placed then could come after a newer change. The chunk is abandoned
  // (its reader reads it again once the capture writes alone).
  it('abandons a chunk whose high watermark comes before the hand-over from the triggers is done', async () => {
    await stopCapture!();
    await setCaptureSwitch(pipeline, 'inventory', 'test-switch-not-reached');
    try {
      await startCapture();
      const { id } = await chunkOfB();
      expect((await chunkState(pipeline, id)).state).toBe('abandoned');
    } finally {
      await stopCapture?.();
      await setCaptureSwitch(pipeline, 'inventory', null);
      await startCapture();
    }
  }, 30_000);

  it('abandons a chunk when the capture restarted between its watermarks (it knows nothing of the window)', async () => {
    const { id } = await createChunk(pipeline, { source: 'inventory', tbl: 'inventory', keys: ['B|F1'] });
    await emitWatermark('low', id);
    await coveredAfter(Date.now()); // the low watermark is written and confirmed...
    await stopCapture!();
    await startCapture(); // ...and the new capture session never saw it
    const snap = (await source.query(`select pg_current_snapshot()::text as s`)).rows[0].s;
    await storeChunkRead(pipeline, id, snap, [
      { key: 'B|F1', image: { sku_id: 'B', fc_id: 'F1', on_hand: 1, reserved: 0 } },
    ]);
    await emitWatermark('high', id);
    await coveredAfter(Date.now());
    expect((await chunkState(pipeline, id)).state).toBe('abandoned');
  }, 60_000);

  // A synchronous standby that does not answer keeps a commit invisible after its record is in the
  // WAL (and in the stream). A capture session that starts after it never sees it in its history; a
  // chunk read meanwhile does not see it either, and its older image would win over the change.
  it('abandons a chunk whose snapshot misses a commit made before the capture session began (a standby away)', async () => {
    await source.query(
      `insert into shop.inventory values ('C', 'F1', 1, 0, now()) on conflict (sku_id, fc_id) do update set on_hand = 1`,
    );
    await coveredAfter(Date.now());
    // In two steps, each reloaded: a backend running a statement when the configuration is reloaded
    // commits it under the old settings, so with both changed at once a tick or a capture write
    // could commit under synchronous_commit = on just as the standby became required, and wait for
    // it (with the capture stuck behind it) until the end of the test.
    const reload = async (sql: string) => {
      await source.query(sql);
      await source.query(`select pg_reload_conf()`);
      await sleep(300);
    };
    const setSync = async (on: boolean) => {
      if (on) {
        await reload(`alter system set synchronous_commit = 'local'`); // everyone else does not wait
        await reload(`alter system set synchronous_standby_names = 'fresh_badges_nobody'`);
      } else {
        await reload(`alter system reset synchronous_standby_names`);
        await reload(`alter system reset synchronous_commit`);
      }
    };
    const held = new pg.Client({ connectionString: TEST_INVENTORY_URL });
    await held.connect();
    let commit: Promise<unknown> | null = null;
    await setSync(true);
    try {
      const from = await maxId();
      await held.query(`begin`);
      await held.query(`set local synchronous_commit = on`);
      await held.query(`update shop.inventory set on_hand = 555 where sku_id = 'C' and fc_id = 'F1'`);
      commit = held.query(`commit`).catch(() => {}); // waits for a standby that does not answer
      for (let i = 0; ; i++) {
        const r = await pipeline.query(`select 1 from pipeline.outbox where id > $1 and key = 'C|F1' and op = 'U'`, [
          from,
        ]);
        if (r.rowCount) break; // captured: its commit record was in the stream
        if (i > 250) throw new Error('the held commit was not captured');
        await sleep(20);
      }
      await stopCapture!();
      await startCapture(); // a new session: its history begins after that commit
      const { id } = await createChunk(pipeline, { source: 'inventory', tbl: 'inventory', keys: ['C|F1'] });
      await emitWatermark('low', id);
      const reader = await source.connect();
      let read: { snap: string; on_hand: number };
      try {
        await reader.query(`begin isolation level repeatable read`);
        read = (
          await reader.query(
            `select pg_current_snapshot()::text as snap, on_hand from shop.inventory where sku_id = 'C' and fc_id = 'F1'`,
          )
        ).rows[0];
        await reader.query(`commit`);
      } finally {
        reader.release();
      }
      expect(read.on_hand).toBe(1); // the commit is still invisible
      await storeChunkRead(pipeline, id, read.snap, [
        { key: 'C|F1', image: { sku_id: 'C', fc_id: 'F1', on_hand: read.on_hand, reserved: 0 } },
      ]);
      await emitWatermark('high', id);
      await coveredAfter(Date.now());
      expect((await chunkState(pipeline, id)).state).toBe('abandoned');
    } finally {
      await setSync(false);
      await commit;
      await held.end();
    }
  }, 60_000);

  // Two source settings can name one database: each slot's stream then holds both sources'
  // watermarks, and only the chunk's own capture may write it (the other's stream is elsewhere).
  it("leaves another source's chunk to that source's capture", async () => {
    await leftAlone(await chunkOfB('orders')); // (the inventory capture has read past it)
  }, 30_000);

  // Another pipeline reading the same source database writes its watermarks into the same WAL, with
  // chunk ids of its own table: one that collides with ours must not close (or open) our window.
  it("leaves another pipeline's chunk to that pipeline's capture, whatever its id", async () => {
    await leftAlone(await chunkOfB('inventory', `${inventory.slot}_other_pipeline`));
  }, 30_000);

  // Ids may hold '|', the outbox's key separator: a range goes on after the last row's columns
  // (not its key split again), a SKU is re-read by its whole id, and a key of several columns that
  // does not split into them is refused before anything is read (never another row in its place).
  // A chunk's id can be handed out again after the pipeline database failed over to a standby that
  // lacked the chunk and its sequence's last value, while the stream still holds the old chunk's
  // watermarks. They carry the old chunk's token: the chunk with that id now is not placed there.
  it('places a chunk only at watermarks carrying its token (an id handed out again is another chunk)', async () => {
    const tokenOf = async (token?: string) => {
      const { id, token: own } = await createChunk(pipeline, { source: 'inventory', tbl: 'inventory', keys: ['B|F1'] });
      await emitWatermark('low', id, 'inventory', inventory.slot, token ?? own);
      const snap = (await source.query(`select pg_current_snapshot()::text as s`)).rows[0].s;
      await storeChunkRead(pipeline, id, snap, [
        { key: 'B|F1', image: { sku_id: 'B', fc_id: 'F1', on_hand: 1, reserved: 0 } },
      ]);
      const from = await maxId();
      await emitWatermark('high', id, 'inventory', inventory.slot, token ?? own);
      await coveredAfter(Date.now());
      return { id, from };
    };
    await leftAlone(await tokenOf('the-old-chunks-token'));
    const own = await tokenOf();
    expect((await chunkState(pipeline, own.id)).state).toBe('written');
  }, 60_000);

  it('ids holding "|": ranges go on row by row, one-column keys are whole, ambiguous keys are refused', async () => {
    const ids = ['P|', 'P|1', 'P|1|2', 'P|2'];
    await source.query(`insert into shop.skus select unnest($1::text[]), 'pipes', 'active', now()`, [ids]);
    try {
      const read = (req: Parameters<typeof readThroughWatermarks>[1]) =>
        readThroughWatermarks({ source: inventory, pipeline, timeoutMs: 20_000 }, req);
      // every skus row once, in order, one row per chunk
      const seen: string[] = [];
      let after: string[] | null = null;
      for (let i = 0; i < 20; i++) {
        const w = await read({ tbl: 'skus', range: { after, limit: 1 } });
        if (!w.read) break;
        seen.push(w.lastColumns![0]!);
        after = w.lastColumns;
      }
      const all = (await source.query(`select sku_id from shop.skus order by sku_id`)).rows.map((r) => r.sku_id);
      expect(seen).toEqual(all);
      // a SKU re-read by its id: that row, not the one named by the id's first part
      const from = await maxId();
      expect((await read({ tbl: 'skus', keys: ['P|1'] })).read).toBe(1);
      const written = await pipeline.query(`select key, image from pipeline.outbox where id > $1 and tbl = 'skus'`, [
        from,
      ]);
      expect(written.rows.map((r) => [r.key, r.image.sku_id])).toEqual([['P|1', 'P|1']]);
      await expect(read({ tbl: 'inventory', keys: ['P|1|F1'], deleteAbsent: true })).rejects.toThrow(
        /does not split into its key columns/,
      );
    } finally {
      await source.query(`delete from shop.skus where sku_id = any($1)`, [ids]);
    }
  }, 60_000);

  it("a SKU's re-read behind a stalled capture fails after its wait; the retry waits on the chunks handed over, reading nothing again", async () => {
    const chunks = async () =>
      Number((await pipeline.query(`select count(*) as n from pipeline.capture_chunks`)).rows[0].n);
    const rows = sourceRowsFor(testConfig(SPLIT_SOURCE_CONFIG), pipeline);
    // (refreshSku touches no store)
    const { refreshSku } = createLifecycleActivities({
      pool: pipeline,
      redis: undefined as never,
      keys: undefined as never,
      sourceRows: rows,
    });
    // The capture stalls (its next write waits for the progress row) without restarting: a session
    // that began after a chunk was read abandons it (its horizon), so only a lag is waited out.
    const stall = await pipeline.connect();
    const before = await chunks();
    const beats: unknown[] = [];
    try {
      await stall.query('begin');
      await stall.query(`select 1 from pipeline.capture_progress where source = 'inventory' for update`);
      const first = new MockActivityEnvironment({ attempt: 1 });
      first.on('heartbeat', (d: unknown) => beats.push(d));
      await expect(first.run(refreshSku, { sku: 'A' })).rejects.toThrow(ChunkNotWrittenYetError);
    } finally {
      await stall.query('rollback');
      stall.release();
    }
    const details = beats[beats.length - 1];
    expect(handedChunksOf(details)).toHaveLength(2); // the skus row's chunk and the inventory rows'
    expect(beats.length).toBeGreaterThan(1); // and it heartbeat while it waited
    expect(await chunks()).toBe(before + 2);
    const retry = new MockActivityEnvironment({ attempt: 2, heartbeatDetails: details });
    const r = (await retry.run(refreshSku, { sku: 'A' })) as { rows: number };
    const inSource = Number(
      (await source.query(`select count(*) as n from shop.inventory where sku_id = 'A'`)).rows[0].n,
    );
    expect(r.rows).toBe(1 + inSource);
    expect(await chunks()).toBe(before + 2); // nothing read again
  }, 30_000);

  it('reads a chunk again whose high watermark the capture passed without writing it (a slot created anew skips that WAL)', async () => {
    const { id } = await createChunk(pipeline, { source: 'inventory', tbl: 'inventory', keys: ['B|F1'] });
    const snap = (await source.query(`select pg_current_snapshot()::text as s`)).rows[0].s;
    await storeChunkRead(pipeline, id, snap, [
      { key: 'B|F1', image: { sku_id: 'B', fc_id: 'F1', on_hand: 1, reserved: 0 } },
    ]);
    // its watermarks never reach the stream, as when the WAL that held them is skipped
    const highLsn = (await source.query(`select pg_current_wal_insert_lsn()::text as l`)).rows[0].l;
    await source.query(`update shop.skus set title = 'moved on' where sku_id = 'D'`);
    await coveredAfter(Date.now());
    expect(await awaitChunk({ source: inventory, pipeline }, { id, highLsn }, { waitMs: 10_000 })).toBeNull();
    await pipeline.query(`delete from pipeline.capture_chunks where id = $1`, [id]);
  }, 30_000);

  it('fails with a clear message when no capture is running', async () => {
    await stopCapture!();
    await expect(
      readThroughWatermarks({ source: inventory, pipeline, timeoutMs: 500 }, { tbl: 'inventory', keys: ['A|F1'] }),
    ).rejects.toThrow(/did not write chunk .* is it running\?/);
    await startCapture();
  }, 30_000);
});
