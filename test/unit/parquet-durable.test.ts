/**
 * activities/export/duckdb.ts copyToParquet: a Parquet file is flushed to disk before its rename,
 * its folder after it, and a folder it creates into its parent, so the landing cursor that moves
 * next never points past a file a power loss could empty or lose. (Watched with a spy on the real
 * fs calls; the file is a real DuckDB COPY.)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { copyToParquet, openDuck } from '../../activities/export/duckdb';

afterEach(() => vi.restoreAllMocks());

describe('copyToParquet', () => {
  it('flushes the file before the rename and the folder after it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fb-parquet-'));
    const file = path.join(dir, 'day=2026-12-06', 'changes.parquet');
    const events: string[] = [];
    const opened = new Map<number, string>();
    const openSync = fs.openSync;
    vi.spyOn(fs, 'openSync').mockImplementation(((p: fs.PathLike, ...rest: unknown[]) => {
      const fd = (openSync as (...a: unknown[]) => number)(p, ...rest);
      opened.set(fd, String(p));
      return fd;
    }) as typeof fs.openSync);
    const fsyncSync = fs.fsyncSync;
    vi.spyOn(fs, 'fsyncSync').mockImplementation((fd: number) => {
      events.push(`fsync ${path.relative(dir, opened.get(fd) ?? '?')}`);
      fsyncSync(fd);
    });
    const renameSync = fs.renameSync;
    vi.spyOn(fs, 'renameSync').mockImplementation((from: fs.PathLike, to: fs.PathLike) => {
      events.push(`rename ${path.relative(dir, String(from))} ${path.relative(dir, String(to))}`);
      renameSync(from, to);
    });
    const duck = await openDuck();
    try {
      await copyToParquet(duck.conn, 'select 1 as one', file);
      const rows = await duck.conn.runAndReadAll(`select one from read_parquet('${file}')`);
      expect(rows.getRows()).toEqual([[1]]);
    } finally {
      duck.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
    // a temporary name of this write's own: the process and a random part
    const tmp = events[1]!.slice('fsync '.length);
    expect(tmp).toMatch(new RegExp(`^day=2026-12-06/changes\\.parquet\\.tmp-${process.pid}-[0-9a-f]{8}$`));
    expect(events).toEqual([
      'fsync ', // the day's folder, new, flushed into its parent (the test's folder)
      `fsync ${tmp}`,
      `rename ${tmp} day=2026-12-06/changes.parquet`,
      'fsync day=2026-12-06',
    ]);
  });
});
