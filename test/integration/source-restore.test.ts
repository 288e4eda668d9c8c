/**
 * A source restored from a disk snapshot, its replication slot with it (issue 23: "never a false
 * fresh answer after a failover of any database"). The inventory database is on a server of the
 * test's own (test/support/private-postgres.ts); its data folder is copied, a restock is captured
 * and applied (the store promises), then the server is restored from the copy: the source no
 * longer has the restock, its slot is back behind what the pipeline recorded, and its new history
 * reuses the WAL positions the pipeline recorded as written.
 *  - No answer is fresh as of after the restore and still promises the restock the source lost.
 *  - The capture tells the history apart (capture/history-check.ts), marks the source lost, the
 *    store is emptied and refilled by itself, reads go fresh again, and the store ends equal to the
 *    rule over both sources (nothing of the new history skipped as "already written").
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/env';
import { PrivatePostgres } from '../support/private-postgres';
import { usePrivateInventory } from '../support/private-inventory';
import { storeEqualsRule as twoSourcesEqualRule } from '../support/two-sources';

const SKUS = Array.from({ length: 20 }, (_, i) => `S-${i}`);

// Created before the worker starts: its configuration names the server's port.
const server = await PrivatePostgres.create('source-restore');

describe('a source restored from a disk snapshot with its slot', () => {
  const { f, pools, badge, writeInventory } = usePrivateInventory('source-restore', server, SKUS);

  beforeAll(async () => {
    await pools.inventory.query(`update shop.inventory set on_hand = 0, reserved = 0 where sku_id = 'PROBE'`);
  });

  it('never promises what the restore took away, refills by itself and skips nothing new', async () => {
    await eventually(
      async () => {
        const b = await badge('PROBE');
        return !b.stale && b.reason === 'out_of_stock';
      },
      30_000,
      'PROBE out of stock, fresh',
    );
    const copy = await server.copyData();
    // The restock, captured and applied: the store promises PROBE.
    await pools.inventory.query(`update shop.inventory set on_hand = 50 where sku_id = 'PROBE'`);
    let writing = true;
    const writer = writeInventory(() => writing);
    await eventually(async () => (await badge('PROBE')).eligible === true, 30_000, 'the restock promised');
    await sleep(1_000); // more history captured past the restock
    writing = false;
    await writer;

    await server.restoreData(copy);
    const restoredAt = Date.now();
    // The restored server's WAL moves on past what the pipeline recorded (archive_timeout does this
    // in production), so its new transactions end at positions the pipeline recorded as written.
    await pools.inventory.query(`select pg_switch_wal()`).catch(() => undefined);
    const falsePromises: unknown[] = [];
    let reading = true;
    const reader = (async () => {
      while (reading) {
        const b = await badge('PROBE');
        if (!b.stale && Date.parse(b.asOf) >= restoredAt && b.eligible) falsePromises.push(b);
        await sleep(25);
      }
    })();
    writing = true;
    const newHistory = writeInventory(() => writing);
    await eventually(
      async () => {
        const b = await badge('PROBE');
        return !b.stale && Date.parse(b.asOf) >= restoredAt && b.reason === 'out_of_stock';
      },
      60_000,
      'reads fresh again after the refill, PROBE out of stock as the restored source says',
    );
    console.log(`source restore healed ${Date.now() - restoredAt} ms after the server accepted connections`);
    writing = false;
    await newHistory;
    reading = false;
    await reader;
    expect(falsePromises).toEqual([]);
    const lost = await f.c.pool.query(
      `select count(*)::int as n from pipeline.outbox where op = 'T' and tbl = 'inventory'`,
    );
    expect(lost.rows[0].n).toBeGreaterThan(0); // the source was marked lost (refilled)
    await twoSourcesEqualRule(f.c, pools, 30_000, 'the store to equal the rule over both sources');
  }, 150_000);
});
