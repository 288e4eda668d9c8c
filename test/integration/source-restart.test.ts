/**
 * A source PostgreSQL server that crashes and restarts under traffic (issue 23, point 8), with
 * capture from the WAL: the inventory database on a server of the test's own
 * (test/support/private-postgres.ts), the orders database on the shared one, the pipeline's
 * database apart. The server is killed (`pg_ctl stop -m immediate`: no checkpoint, so its slot
 * comes back at the position of its last checkpoint and the capture is sent transactions it has
 * already written) right after a probe change commits, and started again.
 *  - While it is down, no answer is fresh as of after the probe without the probe.
 *  - Once it is up, the capture reconnects by itself (Temporal retries the activity) and reads go
 *    fresh again; the time that took is printed.
 *  - The store ends equal to the rule over both sources: nothing lost, nothing applied twice (a
 *    load delta written twice into the outbox would show).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { eventually } from '../support/env';
import { PrivatePostgres } from '../support/private-postgres';
import { usePrivateInventory } from '../support/private-inventory';
import { storeEqualsRule as twoSourcesEqualRule } from '../support/two-sources';

const SKUS = Array.from({ length: 30 }, (_, i) => `S-${i}`);

// Created before the worker starts: its configuration names the server's port.
const server = await PrivatePostgres.create('source-restart');

describe('a source server crashing and restarting under traffic', () => {
  const { f, pools, badge, writeInventory } = usePrivateInventory('source-restart', server, SKUS);

  beforeAll(async () => {
    await pools.inventory.query(`update shop.skus set lifecycle = 'paused' where sku_id = 'PROBE'`);
  });

  it('never answers fresh without a change the crash held back, heals by itself, loses and doubles nothing', async () => {
    let writing = true;
    const writers = [writeOrders(pools.orders, () => writing), writeInventory(() => writing)];
    await sleep(1_500);

    await pools.inventory.query(`update shop.skus set lifecycle = 'active' where sku_id = 'PROBE'`);
    const probeAt = Date.now();
    await server.stop('immediate');

    // Down: read the probe all along; no answer fresh as of after it may lack it.
    const falseFresh: unknown[] = [];
    let reading = true;
    const reader = (async () => {
      while (reading) {
        const b = await badge('PROBE');
        if (!b.stale && Date.parse(b.asOf) >= probeAt && b.reason === 'paused') falseFresh.push(b); // without the probe
        await sleep(25);
      }
    })();
    await eventually(async () => (await badge('PROBE')).stale === true, 10_000, 'reads stale with the source down');
    await sleep(2_000);

    await server.start();
    const upAt = Date.now();
    await eventually(
      async () => {
        const b = await badge('PROBE');
        return !b.stale && Date.parse(b.asOf) >= upAt;
      },
      30_000,
      'reads fresh again after the restart',
    );
    console.log(`source restart healed ${Date.now() - upAt} ms after the server accepted connections`);
    writing = false;
    await Promise.all(writers);
    reading = false;
    await reader;
    expect(falseFresh).toEqual([]);
    expect((await badge('PROBE')).reason).not.toBe('paused');

    await twoSourcesEqualRule(f.c, pools, 30_000, 'the store to equal the rule over both sources');
  }, 120_000);
});

/** Orders placed and cancelled until told to stop (the orders server stays up). */
async function writeOrders(orders: pg.Pool, going: () => boolean): Promise<void> {
  for (let i = 0; going(); i++) {
    const sku = SKUS[i % SKUS.length]!;
    await orders.query(`insert into shop.orders (sku_id, fc_id, qty, status) values ($1, $2, $3, 'placed')`, [
      sku,
      i % 3 ? 'FC-1' : 'FC-2',
      1 + (i % 3),
    ]);
    if (i % 7 === 0)
      await orders.query(
        `update shop.orders set status = 'cancelled' where order_id = (select min(order_id) from shop.orders where status = 'placed')`,
      );
    await sleep(5);
  }
}
