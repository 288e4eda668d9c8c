/**
 * The export's fold of a day's load (activities/export/load-history.ts) in an in-memory DuckDB:
 * order deltas add up in stream order, a load set of the day restarts the running load at its
 * place in the stream (as store/lua/apply.lua applies it), a load set of another day changes
 * nothing, and the end of the day is the last step in stream order.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDuck, sqlString } from '../../activities/export/duckdb';
import { writeLoadHistory } from '../../activities/export/load-history';

const d0 = Date.parse('2026-03-10T00:00:00Z');
const day = { d0, d1: d0 + 86_400_000, yyyymmdd: '20260310' };
const at = (h: number) => d0 + h * 3_600_000;

/** One of the day's feature updates, as export-day.ts appends it to `updates`. */
type Change = { fc: string; day?: string; txid: number; id: number; ms: number } & (
  { delta: number } | { set: number } | { completeFrom: string }
);

let duck: Awaited<ReturnType<typeof openDuck>>;
let staging: string;

beforeEach(async () => {
  duck = await openDuck('64MB');
  staging = fs.mkdtempSync(path.join(os.tmpdir(), 'load-fold-'));
  // the export's tables, with only what the fold reads filled in
  await duck.conn.run(
    `create table updates (feature varchar, k1 varchar, k2 varchar, num bigint, code varchar, version bigint, ptxid ubigint, ts_ms bigint)`,
  );
  await duck.conn.run(
    `create table ev (feature varchar, k1 varchar, k2 varchar, num bigint, code varchar, version bigint, ts_ms bigint)`,
  );
});
afterEach(() => {
  duck.close();
  fs.rmSync(staging, { recursive: true, force: true });
});

/** Folds `changes` (FCs in `capacityOf` known today) and reads back the history and the end of the day. */
async function fold(changes: Change[], capacityOf: string[] = []) {
  for (const fc of capacityOf)
    await duck.conn.run(`insert into ev values ('fc.capacity', ${sqlString(fc)}, null, 100, null, 1, ${d0})`);
  for (const c of changes) {
    const [feature, num, k2] =
      'completeFrom' in c
        ? ['fc.loadsComplete', 'null', c.completeFrom] // k1 '' (export-day.ts, updateRows)
        : 'set' in c
          ? ['fc.loadSet', c.set, c.day ?? day.yyyymmdd]
          : ['fc.load', c.delta, c.day ?? day.yyyymmdd];
    await duck.conn.run(
      `insert into updates values ('${feature}', ${sqlString(c.fc)}, '${k2}', ${num}, null, ${c.id}, ${c.txid}, ${c.ms})`,
    );
  }
  await writeLoadHistory(duck.conn, staging, day);
  const history = (
    await duck.conn.runAndReadAll(
      `select fc, load, epoch_ms(valid_from) as from_ms, epoch_ms(valid_to) as to_ms
         from read_parquet(${sqlString(path.join(staging, 'fc_load_history.parquet'))}) order by fc, valid_from`,
    )
  )
    .getRowObjects()
    .map((r) => [String(r.fc), Number(r.load), Number(r.from_ms), Number(r.to_ms)]);
  const end = (await duck.conn.runAndReadAll(`select fc, load, version from load_end order by fc`))
    .getRowObjects()
    .map((r) => [String(r.fc), Number(r.load), Number(r.version)]);
  return { history, end };
}

describe('the export folds a day load', () => {
  it('adds the day deltas in stream order from 0 at midnight', async () => {
    const { history, end } = await fold([
      { fc: 'F', txid: 10, id: 1, ms: at(1), delta: 3 },
      { fc: 'F', txid: 11, id: 2, ms: at(2), delta: 4 },
      { fc: 'F', txid: 12, id: 3, ms: at(3), delta: -2 },
    ]);
    expect(history).toEqual([
      ['F', 0, d0, at(1)],
      ['F', 3, at(1), at(2)],
      ['F', 7, at(2), at(3)],
      ['F', 5, at(3), day.d1],
    ]);
    expect(end).toEqual([['F', 5, 3]]);
  });

  it('restarts the running load at a load set of the day; later deltas add to it', async () => {
    const { history, end } = await fold([
      { fc: 'F', txid: 10, id: 1, ms: at(1), delta: 3 },
      { fc: 'F', txid: 11, id: 2, ms: at(2), delta: 4 },
      // a refill re-read 20 (orders the stream never carried, say)
      { fc: 'F', txid: 12, id: 3, ms: at(3), set: 20 },
      { fc: 'F', txid: 13, id: 4, ms: at(4), delta: 5 },
      { fc: 'F', txid: 14, id: 5, ms: at(5), delta: -1 },
    ]);
    expect(history).toEqual([
      ['F', 0, d0, at(1)],
      ['F', 3, at(1), at(2)],
      ['F', 7, at(2), at(3)],
      ['F', 20, at(3), at(4)],
      ['F', 25, at(4), at(5)],
      ['F', 24, at(5), day.d1],
    ]);
    expect(end).toEqual([['F', 24, 5]]);
  });

  it('a later load set replaces an earlier one, deltas between them included', async () => {
    const { end } = await fold([
      { fc: 'F', txid: 10, id: 1, ms: at(1), set: 50 },
      { fc: 'F', txid: 11, id: 2, ms: at(2), delta: 4 },
      { fc: 'F', txid: 12, id: 3, ms: at(3), set: 8 },
      { fc: 'F', txid: 13, id: 4, ms: at(4), delta: 1 },
    ]);
    expect(end).toEqual([['F', 9, 4]]);
  });

  it('leaves the day alone for a load set of another day', async () => {
    const { history, end } = await fold([
      { fc: 'F', txid: 10, id: 1, ms: at(1), delta: 3 },
      { fc: 'F', day: '20260309', txid: 11, id: 2, ms: at(2), set: 99 },
      { fc: 'F', txid: 12, id: 3, ms: at(3), delta: 4 },
    ]);
    expect(history).toEqual([
      ['F', 0, d0, at(1)],
      ['F', 3, at(1), at(3)],
      ['F', 7, at(3), day.d1],
    ]);
    expect(end).toEqual([['F', 7, 3]]);
  });

  it('places a set by the stream, not by the clock: a delta before it in the stream is in it', async () => {
    // the delta's source time is after the set's, but the set came later in the stream and read it
    const { history, end } = await fold([
      { fc: 'F', txid: 11, id: 2, ms: at(4), delta: 4 },
      { fc: 'F', txid: 12, id: 3, ms: at(3), set: 20 },
      { fc: 'F', txid: 13, id: 4, ms: at(5), delta: 5 },
    ]);
    // the set takes effect no earlier than the change before it: contiguous intervals, the stream's values
    expect(history).toEqual([
      ['F', 0, d0, at(4)],
      ['F', 20, at(4), at(5)],
      ['F', 25, at(5), day.d1],
    ]);
    expect(end).toEqual([['F', 25, 4]]);
  });

  it('ends the day on the last step in stream order when steps share an instant', async () => {
    const { history, end } = await fold([
      { fc: 'F', txid: 10, id: 1, ms: at(1), delta: 3 },
      { fc: 'F', txid: 11, id: 2, ms: at(1), set: 10 },
      { fc: 'F', txid: 12, id: 3, ms: at(1), delta: 1 },
    ]);
    expect(history).toEqual([
      ['F', 0, d0, at(1)],
      ['F', 11, at(1), day.d1],
    ]);
    expect(end).toEqual([['F', 11, 3]]);
  });

  it('every FC known today starts at 0; an FC only a load set names gets its value', async () => {
    const { history, end } = await fold([{ fc: 'H', txid: 10, id: 1, ms: at(2), set: 6 }], ['G']);
    expect(history).toEqual([
      ['G', 0, d0, day.d1],
      ['H', 0, d0, at(2)],
      ['H', 6, at(2), day.d1],
    ]);
    expect(end).toEqual([
      ['G', 0, 0],
      ['H', 6, 1],
    ]);
  });

  // A refill's completeness (op Z in the store): at its place, every FC's load its own outbox
  // transaction did not set is 0; the deltas after it add to 0.
  it("a refill's completeness zeroes at its place every FC its own transaction did not set", async () => {
    const { history, end } = await fold(
      [
        { fc: 'F', txid: 10, id: 1, ms: at(1), delta: -4 }, // an order deleted before the refill read (store emptied)
        { fc: 'G', txid: 11, id: 2, ms: at(1), delta: 3 },
        { fc: 'H', txid: 12, id: 3, ms: at(2), set: 7 }, // the refill's sets, in its outbox transaction 12
        { fc: 'G', txid: 12, id: 4, ms: at(2), set: 3 },
        { fc: '', txid: 12, id: 4, ms: at(2), completeFrom: '20260308' }, // after its last set
        { fc: 'F', txid: 13, id: 5, ms: at(3), delta: 2 },
      ],
      ['K'],
    );
    expect(end).toEqual([
      ['F', 2, 5],
      ['G', 3, 4],
      ['H', 7, 3],
      ['K', 0, 4],
    ]);
    expect(history.filter((h) => h[0] === 'F')).toEqual([
      ['F', 0, d0, at(1)],
      ['F', -4, at(1), at(2)],
      ['F', 0, at(2), at(3)],
      ['F', 2, at(3), day.d1],
    ]);
  });

  it('a completeness alone zeroes every FC; one from a later day, none', async () => {
    const { end } = await fold([
      { fc: 'F', txid: 10, id: 1, ms: at(1), delta: -4 },
      { fc: 'G', txid: 11, id: 2, ms: at(1), delta: 5 },
      { fc: '', txid: 12, id: 3, ms: at(2), completeFrom: '20260311' }, // not this day's
      { fc: '', txid: 13, id: 4, ms: at(3), completeFrom: '20260310' },
      { fc: 'G', txid: 14, id: 5, ms: at(4), delta: 1 },
      // a day of year 10000 (nine digits) is after this one
      { fc: '', txid: 15, id: 6, ms: at(5), completeFrom: '100000101' },
    ]);
    expect(end).toEqual([
      ['F', 0, 4],
      ['G', 1, 5],
    ]);
  });
});
