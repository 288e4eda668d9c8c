/**
 * The landing's applied clock (activities/export/applied-clock.ts) reads the drain's snapshot log
 * in pages and stops, per shard, at the first snapshot that sees every change of the chunk: each
 * change gets the applied time the unbounded read gave (computed here from the whole log by a
 * plain scan), and the snapshot rows read do not grow with the log after the changes. Outbox rows
 * and the log are written with chosen txids and snapshots (as replay-since.test.ts does), so that:
 *  - odd and even transactions are seen first by different shards (the latest shard's time counts);
 *  - one transaction stays in progress for 40 steps (a long one: its answer is pages further on);
 *  - the last transaction's changes were written before the first chunk's, and only snapshots taken
 *    before those see it (a later chunk with an older change reads further back);
 *  - a shard of an older layout logged snapshots that see none of them;
 *  - 20,000 snapshots per shard that see everything follow (a landing far behind the drain).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appliedClock, SNAPSHOT_PAGE_ROWS, type ClockRow } from '../../activities/export/applied-clock';
import { openDuck, sqlString } from '../../activities/export/duckdb';
import { landChanges } from '../../activities/export/landing';
import { names } from '../../config';
import { parseSnapshot, visibleIn, type PgSnapshot } from '../../db/pg-snapshot';
import { drainShards } from '../../outbox';
import { resetState, testClients } from '../support/env';

const c = testClients();
afterAll(async () => {
  await c.pool.query(`update pipeline.drain_layout set shards = 1`);
  await c.close();
});

/** Txid of transaction i (1..TXNS) is X + i; every txid up to X is visible in every snapshot. */
const X = 7_000_000n;
const TXNS = 60;
const ROWS_PER_TXN = 3;
/** Steps of the drain: each shard logs two snapshots a step (the drain passes several times a second). */
const STEPS = 63;
const TAIL = 20_000;
const CHUNK = 50;
/** An hour ago, on a whole second: every time here is whole milliseconds, as the log compares them. */
const T0 = Math.floor(Date.now() / 1000) * 1000 - 3_600_000;
const LONG = 5;

/** The step at which `shard`'s snapshots first see transaction i. */
function firstStep(shard: number, i: number): number {
  if (i === LONG) return 40;
  if (i === TXNS) return 0;
  return shard === 0 ? (i % 2 === 0 ? i : i + 3) : i + 1;
}

/** The snapshot text that sees exactly the transactions `seen` of 1..TXNS (and everything up to X). */
function snapshotSeeing(seen: (i: number) => boolean): string {
  const all = Array.from({ length: TXNS }, (_, k) => k + 1);
  const xmax = X + BigInt(Math.max(0, ...all.filter(seen))) + 1n;
  const xip = all.filter((i) => !seen(i) && X + BigInt(i) < xmax).map((i) => X + BigInt(i));
  return `${xip[0] ?? xmax}:${xmax}:${xip.join(',')}`;
}

const takenAt = (shard: number, step: number, dup: number) =>
  step === 0 ? T0 - 20_000 + shard * 1_000 + dup * 50 : T0 + step * 1_000 + 600 + shard * 100 + dup * 50;
const appliedAt = (shard: number, step: number, dup: number) => takenAt(shard, step, dup) + 20 + shard * 30 + dup * 5;

async function writeOutbox(): Promise<void> {
  const rows = [];
  for (let i = 1; i <= TXNS; i++)
    for (let r = 0; r < ROWS_PER_TXN; r++)
      rows.push({
        txid: String(X + BigInt(i)),
        key: `O-${i}-${r}`,
        at: (i === TXNS ? T0 - 30_000 : T0 + i * 1_000 + 100) + r,
      });
  await c.pool.query(
    `insert into pipeline.outbox (txid, tbl, op, key, image, created_at)
     select x.txid::xid8, 'orders', 'I', x.key, '{}', to_timestamp(x.at / 1000.0)
       from jsonb_to_recordset($1::jsonb) as x(txid text, key text, at float8)
      order by x.txid::xid8, x.key`,
    [JSON.stringify(rows)],
  );
}

/** The drain's log: shards 0 and 1 step by step, then TAIL snapshots each that see everything; shard 2 of an older layout. */
async function writeSnapshotLog(): Promise<void> {
  const rows = [];
  for (const shard of [0, 1]) {
    let batch = 0;
    for (let step = 0; step <= STEPS; step++)
      for (const dup of [0, 1])
        rows.push({
          shard,
          batch: ++batch,
          snap: snapshotSeeing((i) => firstStep(shard, i) <= step),
          taken: takenAt(shard, step, dup),
          applied: appliedAt(shard, step, dup),
        });
  }
  for (let k = 1; k <= 30; k++)
    rows.push({ shard: 2, batch: k, snap: '100:100:', taken: T0 + k * 1_000, applied: T0 + k * 1_000 });
  await c.pool.query(
    `insert into pipeline.drain_snapshots (shard, batch, snap, taken_at, applied_at)
     select x.shard, x.batch, x.snap::pg_snapshot, to_timestamp(x.taken / 1000.0), to_timestamp(x.applied / 1000.0)
       from jsonb_to_recordset($1::jsonb) as x(shard int, batch bigint, snap text, taken float8, applied float8)`,
    [JSON.stringify(rows)],
  );
  await c.pool.query(
    `insert into pipeline.drain_snapshots (shard, batch, snap, taken_at, applied_at)
     select s, $1::int + k, $2::pg_snapshot, to_timestamp(($3::float8 + k * 10) / 1000), to_timestamp(($3::float8 + k * 10 + 20) / 1000)
       from generate_series(0, 1) s, generate_series(1, $4::int) k`,
    [2 * (STEPS + 1), snapshotSeeing(() => true), T0 + 70_000, TAIL],
  );
}

type LogRow = { shard: number; batch: bigint; snap: PgSnapshot; takenMs: number; appliedMs: string };

/** The whole log, each shard's in batch order. */
async function wholeLog(): Promise<LogRow[][]> {
  const { rows } = await c.pool.query(
    `select shard, batch::text as batch, snap::text as snap, (extract(epoch from taken_at) * 1000)::bigint::text as taken,
            (extract(epoch from applied_at) * 1000)::bigint::text as applied
       from pipeline.drain_snapshots s order by s.shard, s.batch`,
  );
  const byShard = new Map<number, LogRow[]>();
  for (const r of rows) {
    const row = {
      shard: r.shard,
      batch: BigInt(r.batch),
      snap: parseSnapshot(r.snap),
      takenMs: Number(r.taken),
      appliedMs: r.applied,
    };
    byShard.set(r.shard, [...(byShard.get(r.shard) ?? []), row]);
  }
  return [...byShard.values()];
}

/**
 * The unbounded read's answers, chunk by chunk: of every snapshot taken at or after the oldest
 * change of the chunks so far, per shard the first in batch order that sees the transaction; the
 * latest of the shards' times.
 */
function referenceTimes(log: LogRow[][], chunks: ClockRow[][]): (string | null)[][] {
  let from = Infinity;
  return chunks.map((chunk) => {
    from = Math.min(from, ...chunk.map((r) => Number(r.source_ms)));
    return chunk.map((r) => {
      let latest: string | null = null;
      for (const shard of log) {
        const first = shard.find((s) => s.takenMs >= from && visibleIn(s.snap, BigInt(r.txid!)));
        if (first && (latest === null || Number(first.appliedMs) > Number(latest))) latest = first.appliedMs;
      }
      return latest;
    });
  });
}

/** The landing's input: the outbox rows in (txid, id) order, in chunks of CHUNK as a landing call reads them. */
async function landingChunks(): Promise<(ClockRow & { id: string })[][]> {
  const { rows } = await c.pool.query(
    `select txid::text as txid, id::text as id, (extract(epoch from created_at) * 1000)::bigint::text as source_ms
       from pipeline.outbox o order by o.txid, o.id`,
  );
  const chunks = [];
  for (let k = 0; k < rows.length; k += CHUNK) chunks.push(rows.slice(k, k + CHUNK));
  return chunks;
}

/** `pool`, counting the rows its queries of the drain's snapshot log return. */
function countingSnapshotReads(pool: pg.Pool): { pool: pg.Pool; read: () => number } {
  let read = 0;
  const counted = new Proxy(pool, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (prop !== 'query') return typeof value === 'function' ? value.bind(target) : value;
      return async (...args: unknown[]) => {
        const r = await (value as (...a: unknown[]) => Promise<pg.QueryResult>).apply(target, args);
        const text = typeof args[0] === 'string' ? args[0] : ((args[0] as { text?: string }).text ?? '');
        if (text.includes('pipeline.drain_snapshots')) read += r.rowCount ?? 0;
        return r;
      };
    },
  });
  return { pool: counted, read: () => read };
}

/**
 * What a call may read at most: per chunk and shard, the snapshots of every step (the last of them
 * sees the whole chunk) and one page more; each shard's end once, and each chunk's first batches.
 */
const readBound = (chunks: number, pageRows: number) => 3 + chunks * (3 + 2 * (2 * (STEPS + 1) + pageRows));

let log: LogRow[][];
let chunks: (ClockRow & { id: string })[][];
let expected: (string | null)[][];

beforeAll(async () => {
  await resetState(c);
  await writeOutbox();
  await writeSnapshotLog();
  log = await wholeLog();
  chunks = await landingChunks();
  expected = referenceTimes(log, chunks);
});

describe('the applied clock of a landing call', () => {
  it('the data exercises every rule: shards, a long transaction, an older change in a later chunk', () => {
    expect(chunks).toHaveLength(Math.ceil((TXNS * ROWS_PER_TXN) / CHUNK));
    const answer = (i: number) => expected.flat()[chunks.flat().findIndex((r) => r.txid === String(X + BigInt(i)))];
    // even: shard 1 a step behind shard 0; odd: shard 0 three steps late; the first of two snapshots a step
    expect(answer(2)).toBe(String(appliedAt(1, 3, 0)));
    expect(answer(3)).toBe(String(appliedAt(0, 6, 0)));
    expect(answer(LONG)).toBe(String(appliedAt(1, 40, 0)));
    // the last chunk's older change lets its transaction's early snapshots count
    expect(answer(TXNS)).toBe(String(appliedAt(1, 0, 0)));
    // a bound that holds with the log's tail read at once would prove nothing
    expect(readBound(chunks.length, SNAPSHOT_PAGE_ROWS)).toBeLessThan(
      log.reduce((n, shard) => n + shard.length, 0) / 2,
    );
  });

  it.each([1, 7, 100, SNAPSHOT_PAGE_ROWS])(
    'in pages of %i: the unbounded read’s times, reading a bounded part of the log',
    async (pageRows) => {
      const counted = countingSnapshotReads(c.pool);
      const clock = appliedClock(counted.pool, { pageRows });
      const got = [];
      for (const chunk of chunks) got.push(await clock(chunk));
      expect(got).toEqual(expected);
      expect(counted.read()).toBeLessThanOrEqual(readBound(chunks.length, pageRows));
    },
  );

  it('a landing call lands those times, reading a bounded part of the log', async () => {
    // two drain shards now (shard 2 was of an older layout), both caught up with everything
    await c.pool.query(`update pipeline.drain_layout set shards = 2`);
    for (const shard of drainShards(2))
      await c.pool.query(
        `insert into pipeline.consumer_offsets (consumer, snap_from, snap_from_at) values ($1, $2::pg_snapshot, now())
         on conflict (consumer) do update set snap_from = excluded.snap_from, snap_from_at = excluded.snap_from_at`,
        [shard.consumer, snapshotSeeing(() => true)],
      );
    await c.pool.query(`delete from pipeline.consumer_offsets where consumer = $1`, [names.landingConsumer]);
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'landing-clock-'));
    const duck = await openDuck('256MB');
    try {
      const counted = countingSnapshotReads(c.pool);
      const r = await landChanges(counted.pool, out, 1_000, { readChunk: CHUNK });
      expect(r).toMatchObject({ rows: TXNS * ROWS_PER_TXN, more: false });
      expect(counted.read()).toBeLessThanOrEqual(readBound(chunks.length, SNAPSHOT_PAGE_ROWS));
      const glob = sqlString(path.join(out, 'landing', 'day=*', '*.parquet'));
      const landed = (
        await duck.conn.runAndReadAll(
          `select txid::varchar as txid, id::varchar as id, applied_ms::varchar as applied
             from read_parquet(${glob}) order by txid::ubigint, id::bigint`,
        )
      ).getRowObjects();
      expect(landed).toEqual(
        chunks.flat().map((row, k) => ({ txid: row.txid, id: row.id, applied: expected.flat()[k] })),
      );
    } finally {
      duck.close();
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});
