/**
 * A captured TRUNCATE in the training export (activities/export/export-day.ts): the store is
 * emptied and refilled from the source for it, so the export too ends, at the TRUNCATE's place in
 * the stream, every value its table held: the intervals, the end state the next day starts from,
 * and the end-of-day badges. Orders: the day's load starts again from 0. The landing here is
 * written by hand (the columns the landing writes), for a day long over.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDuck } from '../../activities/export/duckdb';
import { exportDay } from '../../activities/export/export-day';
import { landByHand, partitionReader, type LandedChange } from '../support/hand-landing';

const date = '2020-01-05';
const at = (hhmm: string) => Date.parse(`${date}T${hhmm}:00Z`);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'export-truncate-'));
let duck: Awaited<ReturnType<typeof openDuck>>;
let read: ReturnType<typeof partitionReader>;

const changes: LandedChange[] = [
  [1, 'skus', 'I', 'S1', { sku_id: 'S1', title: 't', lifecycle: 'active' }, null, at('08:00')],
  [2, 'skus', 'I', 'S2', { sku_id: 'S2', title: 't', lifecycle: 'active' }, null, at('08:00')],
  [3, 'fulfillment_centers', 'I', 'F1', { fc_id: 'F1', region: 'R1', daily_capacity: 10 }, null, at('08:00')],
  [4, 'region_fc', 'I', 'R1|F1', { region: 'R1', fc_id: 'F1', rank: 1 }, null, at('08:00')],
  [5, 'inventory', 'I', 'S1|F1', { sku_id: 'S1', fc_id: 'F1', on_hand: 5, reserved: 0 }, null, at('09:00')],
  [
    6,
    'orders',
    'I',
    '1',
    { order_id: 1, sku_id: 'S1', fc_id: 'F1', qty: 2, status: 'placed', placed_at: `${date}T09:30:00Z` },
    null,
    at('09:30'),
  ],
  [7, 'inventory', 'T', '', null, null, at('11:00')],
  [8, 'inventory', 'I', 'S2|F1', { sku_id: 'S2', fc_id: 'F1', on_hand: 3, reserved: 0 }, null, at('12:00')],
  [9, 'orders', 'T', '', null, null, at('13:00')],
  [10, 'inventory', 'T', '', null, null, at('14:00')],
  [11, 'inventory', 'I', 'S2|F1', { sku_id: 'S2', fc_id: 'F1', on_hand: 4, reserved: 0 }, null, at('15:00')],
  // TRUNCATEs of tables outside the contract: malformed changes, skipped as the drain dead-letters
  // them; they end nothing ('constructor' is a name every JavaScript object answers to)
  [12, 'warehouses', 'T', '', null, null, at('16:00')],
  [13, 'constructor', 'T', '', null, null, at('16:30')],
];
const progress: string[] = [];

beforeAll(async () => {
  await landByHand(dir, date, changes);
  await exportDay(dir, date, { memoryLimit: '256MB', onProgress: (what) => progress.push(what) });
  duck = await openDuck('256MB');
  read = partitionReader(duck, dir, date);
});
afterAll(() => {
  duck?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('a TRUNCATE in the training export', () => {
  it('ends every value of its table at its place, and the rows written after it start again', async () => {
    expect(
      await read(
        'sku_fc_history.parquet',
        `select sku, fc, available, epoch_ms(valid_from) as f, epoch_ms(valid_to) as t from $file order by sku, f`,
      ),
    ).toEqual([
      { sku: 'S1', fc: 'F1', available: '5', f: String(at('09:00')), t: String(at('11:00')) },
      // (not ended again by the second TRUNCATE: it had no value then)
      { sku: 'S1', fc: 'F1', available: null, f: String(at('11:00')), t: String(at('00:00') + 86_400_000) },
      { sku: 'S2', fc: 'F1', available: '3', f: String(at('12:00')), t: String(at('14:00')) },
      { sku: 'S2', fc: 'F1', available: null, f: String(at('14:00')), t: String(at('15:00')) },
      { sku: 'S2', fc: 'F1', available: '4', f: String(at('15:00')), t: String(at('00:00') + 86_400_000) },
    ]);
  });

  it('leaves the truncated rows out of the end state and the badges', async () => {
    expect(
      await read('state.parquet', `select k1, k2, num from $file where feature = 'sku.available' order by k1`),
    ).toEqual([{ k1: 'S2', k2: 'F1', num: '4' }]);
    expect(await read('badges.parquet', `select sku, eligible, fc from $file order by sku`)).toEqual([
      { sku: 'S1', eligible: false, fc: null },
      { sku: 'S2', eligible: true, fc: 'F1' },
    ]);
  });

  it('skips a TRUNCATE of a table outside the contract as a malformed change', () => {
    expect(progress).toContain('feature updates derived (2 malformed changes skipped)');
  });

  it("starts the day's load again from 0 at a TRUNCATE of orders", async () => {
    expect(
      await read(
        'fc_load_history.parquet',
        `select * exclude (valid_from, valid_to), epoch_ms(valid_from) as f from $file order by f`,
      ),
    ).toEqual([
      expect.objectContaining({ load: '0', f: String(at('00:00')) }),
      expect.objectContaining({ load: '2', f: String(at('09:30')) }),
      expect.objectContaining({ load: '0', f: String(at('13:00')) }),
    ]);
    expect(await read('state.parquet', `select num from $file where feature = 'fc.load'`)).toEqual([{ num: '0' }]);
  });
});
