/**
 * A partition written while its day was running (an export of today) holds the state at its
 * cut-off, not at midnight: its _partition.json says so (activities/export/partition-marker.ts),
 * and the next day's export refuses to continue from it until the day is exported again once over
 * (activities/export/day-inputs.ts, previousStateFile); so does one of a day over but not yet
 * landed through its end (the drain or landing behind). Without that, the rest of the day's changes
 * would be missing from every interval of the next day. The landing here is written by hand.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDuck } from '../../activities/export/duckdb';
import { exportDay, partitionDir } from '../../activities/export/export-day';
import { readPartitionMarker } from '../../activities/export/partition-marker';
import { landingDir } from '../../activities/export/day-inputs';
import { landByHand, partitionReader, type LandedChange } from '../support/hand-landing';

const first = '2020-01-05';
const next = '2020-01-06';
const at = (date: string, hhmm: string) => Date.parse(`${date}T${hhmm}:00Z`);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'export-partial-'));
let duck: Awaited<ReturnType<typeof openDuck>>;

const stock = (onHand: number) => ({ sku_id: 'S1', fc_id: 'F1', on_hand: onHand, reserved: 0 });
const morning: LandedChange[] = [
  [1, 'skus', 'I', 'S1', { sku_id: 'S1', title: 't', lifecycle: 'active' }, null, at(first, '08:00')],
  [2, 'fulfillment_centers', 'I', 'F1', { fc_id: 'F1', region: 'R1', daily_capacity: 10 }, null, at(first, '08:00')],
  [3, 'region_fc', 'I', 'R1|F1', { region: 'R1', fc_id: 'F1', rank: 1 }, null, at(first, '08:00')],
  [4, 'inventory', 'I', 'S1|F1', stock(5), null, at(first, '08:00')],
];
// landed after the export during the day
const afternoon: LandedChange[] = [[5, 'inventory', 'U', 'S1|F1', stock(2), stock(5), at(first, '15:00')]];
const ofTheNextDay: LandedChange[] = [[6, 'inventory', 'U', 'S1|F1', stock(3), stock(2), at(next, '10:00')]];

beforeAll(async () => {
  await landByHand(dir, first, morning, ['b1-a.parquet']);
  // exported at noon, while the day is running
  await exportDay(dir, first, { memoryLimit: '256MB', now: at(first, '12:00') });
  await landByHand(dir, first, afternoon, ['b2-a.parquet']);
  await landByHand(dir, next, ofTheNextDay, ['b3-a.parquet']);
  duck = await openDuck('256MB');
});
afterAll(() => {
  duck?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('a partition written while its day was running', () => {
  it('says so in its marker', () => {
    expect(readPartitionMarker(partitionDir(dir, first))).toEqual({
      date: first,
      complete: false,
      intervalsEnd: new Date(at(first, '08:00') + 1).toISOString(),
      landingFiles: ['b1-a.parquet'], // what it read: the afternoon's file landed after it
    });
  });

  it("is not the next day's start: that export fails, naming the day and how to replace it, and writes nothing", async () => {
    await expect(exportDay(dir, next, { memoryLimit: '256MB' })).rejects.toThrow(
      `${first}'s partition was written before the day was over or landed through its end (partial: its end state may not be the one at midnight; its intervals end at ${new Date(at(first, '08:00') + 1).toISOString()}): export it again once the landing has caught up past its end (npm run ops -- export --date ${first})`,
    );
    expect(fs.existsSync(partitionDir(dir, next))).toBe(false);
    expect(fs.readdirSync(path.join(dir, '.staging'))).toEqual([]);
  });

  it('exported again once the day is over but not yet landed through its end, it is still partial', async () => {
    const midnight = at(next, '00:00');
    await exportDay(dir, first, { memoryLimit: '256MB', landedThroughMs: midnight - 60_000 });
    expect(readPartitionMarker(partitionDir(dir, first))).toMatchObject({ complete: false });
    await exportDay(dir, first, { memoryLimit: '256MB', landedThroughMs: null }); // not known
    expect(readPartitionMarker(partitionDir(dir, first))).toMatchObject({ complete: false });
    await expect(exportDay(dir, next, { memoryLimit: '256MB' })).rejects.toThrow(/partition was written before/);
  });

  it('exported again once the day is over and landed, it is complete, and the next day continues from its end at midnight', async () => {
    await exportDay(dir, first, { memoryLimit: '256MB', landedThroughMs: at(next, '00:00') });
    expect(readPartitionMarker(partitionDir(dir, first))).toMatchObject({
      complete: true,
      intervalsEnd: new Date(at(next, '00:00')).toISOString(),
    });
    await exportDay(dir, next, { memoryLimit: '256MB' });
    expect(readPartitionMarker(partitionDir(dir, next))).toMatchObject({ complete: true });
    // 2 from midnight (the afternoon's change, not the partial state's 5), then the day's own 3
    const read = partitionReader(duck, dir, next);
    expect(
      await read(
        'sku_fc_history.parquet',
        `select available, epoch_ms(valid_from) as f, epoch_ms(valid_to) as t from $file order by f`,
      ),
    ).toEqual([
      { available: '2', f: String(at(next, '00:00')), t: String(at(next, '10:00')) },
      { available: '3', f: String(at(next, '10:00')), t: String(at(next, '00:00') + 86_400_000) },
    ]);
  });

  // Retention removes the landing files of complete days only: such a day was not quiet.
  it('once its landing files are removed, --allow-empty does not replace the complete partition with an empty day', async () => {
    const before = fs.readdirSync(partitionDir(dir, first)).sort();
    fs.rmSync(landingDir(dir, first), { recursive: true, force: true });
    await expect(exportDay(dir, first, { memoryLimit: '256MB', ifEmpty: 'write' })).rejects.toThrow(
      `${first} has a complete partition and no landing files (removed by the landing retention after its export): exported again with --allow-empty it would be replaced by an empty day. Nothing was written; the partition stays`,
    );
    expect(fs.readdirSync(partitionDir(dir, first)).sort()).toEqual(before);
    expect(readPartitionMarker(partitionDir(dir, first))).toMatchObject({
      complete: true,
      landingFiles: ['b1-a.parquet', 'b2-a.parquet'],
    });
  });
});
