/**
 * What an export of one day starts from (activities/export/day-inputs.ts): where a day's open
 * intervals end (never a future instant), and which end state it continues past quiet days
 * (never a partial day's).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { dayIsOver, dayStart, intervalsEnd, partitionDir, previousStateFile } from '../../activities/export/day-inputs';
import { landingDir } from '../../activities/export/day-inputs';
import { writePartitionMarker } from '../../activities/export/partition-marker';

const d0 = dayStart('2026-11-24');
const hour = 3_600_000;

describe('intervalsEnd', () => {
  it('is the next midnight for a day that is over', () => {
    expect(intervalsEnd(d0, d0 + 30 * hour, d0 + 23 * hour)).toBe(d0 + 24 * hour);
    expect(intervalsEnd(d0, d0 + 24 * hour, null)).toBe(d0 + 24 * hour);
  });

  it('is 1 ms after the latest change for a day still running, never later than now or midnight', () => {
    expect(intervalsEnd(d0, d0 + 9 * hour, d0 + 8 * hour)).toBe(d0 + 8 * hour + 1);
    expect(intervalsEnd(d0, d0 + 9 * hour, null)).toBe(d0 + 9 * hour);
    // a source clock ahead of this one: still inside the day
    expect(intervalsEnd(d0, d0 + 9 * hour, d0 + 25 * hour)).toBe(d0 + 24 * hour);
  });
});

describe('dayIsOver', () => {
  it('from the next midnight on: a partition written then is complete', () => {
    expect(dayIsOver(d0, d0 + 24 * hour - 1)).toBe(false);
    expect(dayIsOver(d0, d0 + 24 * hour)).toBe(true);
  });
});

describe('previousStateFile', () => {
  let dir = '';
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const partition = (date: string) => {
    fs.mkdirSync(partitionDir(dir, date), { recursive: true });
    fs.writeFileSync(path.join(partitionDir(dir, date), 'state.parquet'), '');
  };
  /** The partition's marker: written after its day was over (complete) or while it ran. */
  const marked = (date: string, complete: boolean) =>
    writePartitionMarker(partitionDir(dir, date), { date, complete, intervalsEnd: `${date}T09:00:00.001Z` });
  const landed = (date: string) => {
    fs.mkdirSync(landingDir(dir, date), { recursive: true });
    fs.writeFileSync(path.join(landingDir(dir, date), 'b1-1_1-1_1.parquet'), '');
  };

  it('is the day before, or the latest partition before quiet days (nothing landed)', () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'day-inputs-'));
    expect(previousStateFile(dir, '2026-11-24')).toBeNull();
    partition('2026-11-20');
    partition('2026-11-21');
    landed('2026-11-24');
    expect(previousStateFile(dir, '2026-11-22')).toBe(path.join(partitionDir(dir, '2026-11-21'), 'state.parquet'));
    expect(previousStateFile(dir, '2026-11-24')).toBe(path.join(partitionDir(dir, '2026-11-21'), 'state.parquet'));
  });

  it('refuses to skip a day that landed changes but was not exported', () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'day-inputs-'));
    partition('2026-11-21');
    landed('2026-11-23');
    expect(() => previousStateFile(dir, '2026-11-24')).toThrow(/2026-11-23 has landed changes but no export partition/);
  });

  it('refuses to skip a day whose landing files may have been pruned (past LANDING_RETENTION_D)', () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'day-inputs-'));
    partition('2026-11-01');
    // 11-02 … 11-23 landed nothing that is still there; days before 11-10 are past the retention
    expect(() => previousStateFile(dir, '2026-11-24', '2026-11-10')).toThrow(
      /whether 2026-11-02 was quiet cannot be told: its landing files are past LANDING_RETENTION_D/,
    );
    // …and says how to get past it: each day in between exported, a quiet one with --allow-empty
    expect(() => previousStateFile(dir, '2026-11-24', '2026-11-10')).toThrow(
      /npm run ops -- export --date 2026-11-02; a day that was quiet has nothing landed and is exported with --allow-empty/,
    );
    expect(previousStateFile(dir, '2026-11-24', '2026-11-01')).toBe(
      path.join(partitionDir(dir, '2026-11-01'), 'state.parquet'),
    );
  });

  it('refuses to continue a partition written while its day was running, saying how to replace it', () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'day-inputs-'));
    partition('2026-11-22');
    marked('2026-11-22', true);
    partition('2026-11-23');
    marked('2026-11-23', false);
    expect(() => previousStateFile(dir, '2026-11-24')).toThrow(
      "2026-11-23's partition was written before the day was over or landed through its end (partial: its end state may not be the one at midnight; its intervals end at 2026-11-23T09:00:00.001Z): export it again once the landing has caught up past its end (npm run ops -- export --date 2026-11-23)",
    );
    // (an earlier day's export does not look at it)
    expect(previousStateFile(dir, '2026-11-23')).toBe(path.join(partitionDir(dir, '2026-11-22'), 'state.parquet'));
    // exported again once over: complete
    marked('2026-11-23', true);
    expect(previousStateFile(dir, '2026-11-24')).toBe(path.join(partitionDir(dir, '2026-11-23'), 'state.parquet'));
  });

  it('takes a partition without a marker (written before partitions had one) as complete', () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'day-inputs-'));
    partition('2026-11-23');
    expect(previousStateFile(dir, '2026-11-24')).toBe(path.join(partitionDir(dir, '2026-11-23'), 'state.parquet'));
  });
});
