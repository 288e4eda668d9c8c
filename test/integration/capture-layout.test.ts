/**
 * The source layout the pipeline database records (outbox/capture-layout.ts), on the real pipeline
 * database: when the sources change (the orders table moves to a database of its own, or back), a
 * source that joins a pipeline which has seen changes before has a new slot that never sends what
 * came before it, so it is marked lost (a refill); a first start records every source at once and
 * marks none (its first backfill fills the store); a source no longer configured is forgotten.
 * (The whole path, with captures, a drain and a refill: logical-backfill.test.ts.)
 */
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import type { SourceTable } from '../../capture/source-tables';
import { createPool } from '../../db/pool';
import { truncateEverything } from '../../db/truncate';
import { joinCaptureLayout } from '../../outbox/capture-layout';
import { capturedThroughSql } from '../../outbox/capture-progress';
import { TEST_DATABASE_URL } from '../support/env';

const ref = (name: string, tables: SourceTable[]) => ({ name, slot: `slot_${name}`, tables });
const TWO = [ref('lay-inventory', ['skus', 'inventory']), ref('lay-orders', ['orders'])];
const ONE = [ref('lay-shop', ['skus', 'inventory', 'orders'])];

describe('the capture layout', () => {
  const pipeline = createPool(TEST_DATABASE_URL, 4);
  afterAll(async () => {
    await pristine();
    await pipeline.end();
  });
  /** A pipeline that has seen no change at all, and records no source. */
  const pristine = async () => {
    await truncateEverything(pipeline);
    await pipeline.query(`delete from pipeline.capture_progress`);
  };
  beforeEach(pristine);

  const recorded = async () =>
    (
      await pipeline.query(
        `select source, lost_at is not null as lost, covered_at from pipeline.capture_progress order by source`,
      )
    ).rows;
  const truncates = async () =>
    (await pipeline.query(`select tbl from pipeline.outbox where op = 'T' order by id`)).rows.map((r) => r.tbl);
  const stale = async () =>
    (await pipeline.query(`select ${capturedThroughSql(true)} = 'epoch'::timestamptz as stale`)).rows[0].stale;

  it('reads are stale while no source is recorded under the logical capture, or a coverage is from the future', async () => {
    const throughMs = async (logical: boolean) => {
      const at = (await pipeline.query(`select ${capturedThroughSql(logical)} as at`)).rows[0].at as Date | null;
      return at === null ? null : at.getTime();
    };
    // nothing recorded: under the trigger capture no source is captured from the WAL (no bound);
    // under the logical capture no capture has joined yet (the epoch)
    expect(await throughMs(false)).toBeNull();
    expect(await throughMs(true)).toBe(0);
    await joinCaptureLayout(pipeline, TWO);
    await pipeline.query(`update pipeline.capture_progress set covered_at = now() - interval '1 second'`);
    expect(await throughMs(true)).toBeGreaterThan(Date.now() - 60_000);
    // the database's clock went back an hour after one coverage was recorded: that source's
    // coverage is no bound on anything (least(now, it) would be now), so the epoch
    await pipeline.query(
      `update pipeline.capture_progress set covered_at = now() + interval '1 hour' where source = 'lay-orders'`,
    );
    expect(await throughMs(true)).toBe(0);
    expect(await throughMs(false)).toBe(0);
  });

  it('records a layout at once, and marks a source that joins another layout lost', async () => {
    // a first start: the two sources' captures open together; both recorded once, neither lost
    const first = await Promise.all([joinCaptureLayout(pipeline, TWO), joinCaptureLayout(pipeline, TWO)]);
    expect(first.flatMap((c) => c.joined).sort()).toEqual(['lay-inventory', 'lay-orders']);
    expect(first.flatMap((c) => c.markedLost)).toEqual([]);
    expect(await recorded()).toEqual([
      { source: 'lay-inventory', lost: false, covered_at: null },
      { source: 'lay-orders', lost: false, covered_at: null },
    ]);
    expect(await joinCaptureLayout(pipeline, TWO)).toEqual({ joined: [], markedLost: [], retired: [] });
    expect(await truncates()).toEqual([]);
    // reads wait for every configured source, the one whose capture has not started too
    await pipeline.query(`update pipeline.capture_progress set covered_at = now() where source = 'lay-inventory'`);
    expect(await stale()).toBe(true);
    await pipeline.query(`update pipeline.capture_progress set covered_at = now()`);
    expect(await stale()).toBe(false);
    // the layout changes: one database again
    expect(await joinCaptureLayout(pipeline, ONE)).toEqual({
      joined: ['lay-shop'],
      markedLost: ['lay-shop'],
      retired: [
        { source: 'lay-inventory', slot: 'slot_lay-inventory' },
        { source: 'lay-orders', slot: 'slot_lay-orders' },
      ],
    });
    expect(await recorded()).toEqual([{ source: 'lay-shop', lost: true, covered_at: null }]);
    expect(await truncates()).toEqual(['skus', 'inventory', 'orders']);
    expect(await stale()).toBe(true);
  });

  // The trigger capture records no source, but its changes pass through the outbox: sources of
  // their own after it are a layout change (their slots never send what came before them).
  it('marks the sources lost when the pipeline saw changes before any was recorded (after the triggers)', async () => {
    await pipeline.query(`insert into pipeline.outbox (tbl, op, key, image, route) values ('skus', 'I', 'A', '{}', 0)`);
    const joined = await joinCaptureLayout(pipeline, TWO);
    expect(joined.markedLost).toEqual(['lay-inventory', 'lay-orders']);
    // ...or, the outbox compacted since, changes delivered to the store
    await pristine();
    await pipeline.query(
      `insert into pipeline.consumer_offsets (consumer, last_batch, last_txid, last_id) values ('layout-test', 3, '100', 7)`,
    );
    expect((await joinCaptureLayout(pipeline, TWO)).markedLost).toEqual(['lay-inventory', 'lay-orders']);
  });

  it('takes a slot name changed in the configuration without a refill', async () => {
    await joinCaptureLayout(pipeline, TWO);
    await pipeline.query(`update pipeline.capture_progress set covered_at = now()`);
    const renamed = [{ ...TWO[0]!, slot: 'slot_renamed' }, TWO[1]!];
    expect(await joinCaptureLayout(pipeline, renamed)).toEqual({ joined: [], markedLost: [], retired: [] });
    const slots = (await pipeline.query(`select slot from pipeline.capture_progress order by source`)).rows;
    expect(slots.map((r) => r.slot)).toEqual(['slot_renamed', 'slot_lay-orders']);
  });
});
