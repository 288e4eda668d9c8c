/**
 * What dead exports leave in EXPORT_DIR/.staging (activities/export/export-day.ts) is removed by
 * the landing run (on the batch task queue) once older than any export may run, and nothing else: not a running export's folder,
 * not a name the export does not write.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pruneStaging, STAGING_ABANDONED_MS } from '../../activities/export/export-day';

let dir: string | undefined;
afterEach(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('pruneStaging', () => {
  it('removes the folders of exports older than any may run, keeps the rest', () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'staging-'));
    const now = Date.parse('2026-12-06T12:00:00Z');
    const old = now - STAGING_ABANDONED_MS - 1;
    const names = [
      `date=2026-12-01.4242.${old}`, // a dead attempt
      `old-date=2026-12-01.4242.${old}`, // a swap cut short
      `date=2026-12-05.4343.${now - 60_000}`, // an export running now
      'notes', // not the export's
    ];
    for (const name of names) fs.mkdirSync(path.join(dir, '.staging', name, 'tmp'), { recursive: true });
    fs.writeFileSync(path.join(dir, '.staging', names[0]!, 'tmp', 'export.duckdb'), 'x');
    expect(pruneStaging(dir, now).sort()).toEqual([names[0], names[1]].sort());
    expect(fs.readdirSync(path.join(dir, '.staging')).sort()).toEqual([names[2], 'notes'].sort());
  });

  it('is a no-op when no export ever ran', () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'staging-'));
    expect(pruneStaging(dir)).toEqual([]);
  });
});
