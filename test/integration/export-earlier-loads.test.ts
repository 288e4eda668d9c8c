/**
 * A day's load changes that landed on an earlier day (activities/export/earlier-loads.ts): an
 * order placed on the day but written before its midnight, an order moved to the day, a load set
 * of the day written before it. The store counts them in the day's counter from the moment it
 * applied them; so does the export, from midnight. Before the last TRUNCATE of orders nothing
 * counts. The landing here is written by hand (the columns the landing writes).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDuck } from '../../activities/export/duckdb';
import { exportDay } from '../../activities/export/export-day';
import { landByHand, partitionReader, type LandedChange } from '../support/hand-landing';

const day = '2020-01-06';
const before = '2020-01-05';
const at = (date: string, hhmm: string) => Date.parse(`${date}T${hhmm}Z`);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'export-earlier-loads-'));
let duck: Awaited<ReturnType<typeof openDuck>>;
let read: ReturnType<typeof partitionReader>;

const order = (id: number, qty: number, placed: string) => ({
  order_id: id,
  sku_id: 'S1',
  fc_id: 'F1',
  qty,
  status: 'placed',
  placed_at: placed,
});
const earlier: LandedChange[] = [
  // placed on the day, but before the TRUNCATE of orders below: counts nowhere
  [1, 'orders', 'I', '1', order(1, 7, `${day}T00:00:00.5+00:00`), null, at(before, '10:00:00')],
  [2, 'orders', 'T', '', null, null, at(before, '11:00:00')],
  // placed the day before: that day's load, not this one's
  [3, 'orders', 'I', '3', order(3, 5, `${before}T12:00:00+00:00`), null, at(before, '12:00:00')],
  // placed on the day (a clock ahead of the pipeline's), written just before its midnight
  [4, 'orders', 'I', '4', order(4, 2, `${day}T00:00:00.2+00:00`), null, at(before, '23:59:59.9')],
  // moved from the day before to the day
  [
    5,
    'orders',
    'U',
    '3',
    order(3, 5, `${day}T08:00:00+02:00`),
    order(3, 5, `${before}T12:00:00+00:00`),
    at(before, '23:59:59.95'),
  ],
  // the day's whole load re-read from the source (a refill under capture from the WAL), after them
  [6, 'orders', 'S', 'F1|20200106', { fc_id: 'F1', day: '20200106', load: 6 }, null, at(before, '23:59:59.97')],
  // another day's load set: not this day's
  [7, 'orders', 'S', 'F1|20200107', { fc_id: 'F1', day: '20200107', load: 50 }, null, at(before, '23:59:59.98')],
];
const ofTheDay: LandedChange[] = [
  [10, 'skus', 'I', 'S1', { sku_id: 'S1', title: 't', lifecycle: 'active' }, null, at(day, '00:10:00')],
  [11, 'fulfillment_centers', 'I', 'F1', { fc_id: 'F1', region: 'R1', daily_capacity: 10 }, null, at(day, '00:10:00')],
  [12, 'region_fc', 'I', 'R1|F1', { region: 'R1', fc_id: 'F1', rank: 1 }, null, at(day, '00:10:00')],
  [13, 'inventory', 'I', 'S1|F1', { sku_id: 'S1', fc_id: 'F1', on_hand: 5, reserved: 0 }, null, at(day, '00:10:00')],
  [14, 'orders', 'I', '14', order(14, 1, `${day}T09:00:00+00:00`), null, at(day, '09:00:00')],
];

beforeAll(async () => {
  // each landed twice (a crash between the file and the cursor): counted once
  await landByHand(dir, before, earlier, ['b1-a.parquet', 'b1-b.parquet']);
  await landByHand(dir, day, ofTheDay, ['b1-a.parquet', 'b1-b.parquet']);
  await exportDay(dir, day, { memoryLimit: '256MB' });
  duck = await openDuck('256MB');
  read = partitionReader(duck, dir, day);
});
afterAll(() => {
  duck?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("a day's load changes that landed on an earlier day", () => {
  it('count from midnight, as in the store: the order placed on the day, the one moved to it, the load set', async () => {
    expect(
      await read('fc_load_history.parquet', `select fc, load, epoch_ms(valid_from) as f from $file order by f`),
    ).toEqual([
      // 2 + 5 (not the order before the TRUNCATE), then the load set's 6, all before midnight
      { fc: 'F1', load: '6', f: String(at(day, '00:00:00')) },
      { fc: 'F1', load: '7', f: String(at(day, '09:00:00')) },
    ]);
    expect(await read('state.parquet', `select k1, k2, num from $file where feature = 'fc.load'`)).toEqual([
      { k1: 'F1', k2: '20200106', num: '7' },
    ]);
  });

  it("leave the earlier day's changes out of the day's changes and other features", async () => {
    expect(await read('changes.parquet', `select count(*)::int as n from $file`)).toEqual([{ n: 5 }]);
    expect(await read('badges.parquet', `select sku, eligible from $file`)).toEqual([{ sku: 'S1', eligible: true }]);
  });
});

// A refill's completeness that landed before midnight (capture from the WAL: the store zeroed the
// day's counters it then held that the refill did not set) counts at midnight in stream order too,
// also when another day's set carries it, or no set (a refill that found no order).
describe("a refill's completeness that landed on an earlier day", () => {
  const completenessDir = fs.mkdtempSync(path.join(os.tmpdir(), 'export-earlier-complete-'));
  const exported = async (earlierChanges: LandedChange[]) => {
    fs.rmSync(completenessDir, { recursive: true, force: true });
    await landByHand(completenessDir, before, earlierChanges);
    await landByHand(completenessDir, day, ofTheDay);
    await exportDay(completenessDir, day, { memoryLimit: '256MB' });
    return partitionReader(
      duck,
      completenessDir,
      day,
    )('fc_load_history.parquet', `select fc, load, epoch_ms(valid_from) as f from $file order by f`);
  };
  afterAll(() => fs.rmSync(completenessDir, { recursive: true, force: true }));

  it("zeroes what came before it, carried by another day's set or alone", async () => {
    const placed = [4, 'orders', 'I', '4', order(4, 2, `${day}T00:00:00.2+00:00`), null, at(before, '23:59:59.9')];
    for (const completeness of [
      [7, 'orders', 'S', 'F1|20200105', { fc_id: 'F1', day: '20200105', load: 3, complete_from: '20200101' }],
      [7, 'orders', 'S', '|20200101', { complete_from: '20200101' }],
    ])
      expect(
        await exported([placed as LandedChange, [...completeness, null, at(before, '23:59:59.95')] as LandedChange]),
      ).toEqual([
        // the order's 2, then 0 at the completeness, both before midnight; then the day's order
        { fc: 'F1', load: '0', f: String(at(day, '00:00:00')) },
        { fc: 'F1', load: '1', f: String(at(day, '09:00:00')) },
      ]);
    // a completeness from a later day leaves it alone
    expect(
      await exported([
        placed as LandedChange,
        [7, 'orders', 'S', '|20200107', { complete_from: '20200107' }, null, at(before, '23:59:59.95')],
      ]),
    ).toEqual([
      { fc: 'F1', load: '2', f: String(at(day, '00:00:00')) },
      { fc: 'F1', load: '3', f: String(at(day, '09:00:00')) },
    ]);
  });
});
