/**
 * Order-service traffic at a target rate of source changes per second: placing orders (insert +
 * reserve in one transaction), shipping, cancelling, restocking, capacity and lifecycle changes.
 * Several connections run at once, so transactions commit out of id order, as in production.
 * The rules here mirror what the order service does; the pipeline never assumes them.
 *
 * It writes into one database holding every shop table (a pool), or, given two pools, into the
 * inventory service's database (skus, fulfillment_centers, region_fc, inventory) and the order
 * service's (orders) as those two services would: placing an order reserves the stock in one and
 * inserts the order in the other, two transactions; shipping or cancelling updates the order, then
 * releases the stock.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { CatalogueSize, fcId, skuFcIndexes, skuId } from './catalogue';
import { reportThrottle } from './report-throttle';
import { logger } from '../log/logger';

export interface TrafficOptions {
  /** Target source changes (outbox rows) per second; 0 = as fast as possible. */
  rate: number;
  /** Stop after this many changes (approximately: whole operations). */
  changes?: number;
  /** Stop after this long. */
  durationMs?: number;
  connections: number;
  seed: number;
  size: CatalogueSize;
  /** Called at most every `progressEveryMs`. */
  onProgress?: (s: TrafficStats) => void;
  /** How often onProgress may be called (default 10 s: simulator/report-throttle.ts). */
  progressEveryMs?: number;
  /** Stops early when aborted. */
  signal?: AbortSignal;
}

export interface TrafficStats {
  operations: number;
  changes: number;
  failed: number;
  elapsedMs: number;
  byKind: Record<string, number>;
}

/** mulberry32: small, fast, seedable; plenty for workload generation. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface OpenOrder {
  orderId: string;
}

/** Where the traffic writes: one database with every shop table, or the inventory service's and the order service's. */
export type ShopDatabases = pg.Pool | { inventory: pg.Pool; orders: pg.Pool };

/** The pools behind ShopDatabases: `split` when the orders live in a database of their own. */
interface Shop {
  inventory: pg.Pool;
  orders: pg.Pool;
  split: boolean;
}

function shopOf(db: ShopDatabases): Shop {
  // (any pg.Pool is one database to the traffic, whatever else it carries)
  if (db instanceof pg.Pool) return { inventory: db, orders: db, split: false };
  return { inventory: db.inventory, orders: db.orders, split: true };
}

type Op = { kind: string; changes: number; run: (shop: Shop) => Promise<boolean> };

/** An operation that updates one row of the inventory service's tables: it happened when the row was there. */
const oneRowUpdate = (kind: string, sql: string, params: unknown[]): Op => ({
  kind,
  changes: 1,
  run: async (shop) => ((await shop.inventory.query(sql, params)).rowCount ?? 0) > 0,
});

/** What choosing the next operation draws on: the seeded generator, the catalogue, the orders still open. */
interface Workload {
  random: () => number;
  pick: (n: number) => number;
  size: CatalogueSize;
  open: OpenOrder[];
}

/** A stocked (SKU, FC) pair. */
function randomStock(w: Workload): { sku: string; fc: string } {
  const i = w.pick(w.size.skus);
  const fcs = skuFcIndexes(i, w.size);
  return { sku: skuId(i), fc: fcId(fcs[w.pick(fcs.length)]) };
}

const RESERVE = `update shop.inventory set reserved = reserved + $3, updated_at = now()
                  where sku_id = $1 and fc_id = $2 and on_hand - reserved >= $3`;

/** The stock an order held: released, and on shipping taken from on hand. */
const RELEASE = {
  ship: `update shop.inventory set reserved = reserved - $3, on_hand = on_hand - $3, updated_at = now()
          where sku_id = $1 and fc_id = $2`,
  cancel: `update shop.inventory set reserved = reserved - $3, updated_at = now() where sku_id = $1 and fc_id = $2`,
};

/**
 * Places an order, only when the stock is there: insert + reserve in one statement, or with the
 * orders apart, the reservation and then the order in its own database (placeSplit).
 */
function placeOp(w: Workload): Op {
  const { sku, fc } = randomStock(w);
  const qty = 1 + w.pick(3);
  return {
    kind: 'place',
    changes: 2,
    run: async (shop) => {
      const params = [sku, fc, qty];
      if (shop.split) return placeSplit(shop, w, params);
      const r = await shop.orders.query(
        `with inv as (${RESERVE} returning 1)
         insert into shop.orders (sku_id, fc_id, qty, status) select $1, $2, $3, 'placed' from inv returning order_id`,
        params,
      );
      if (r.rowCount) w.open.push({ orderId: r.rows[0].order_id });
      return (r.rowCount ?? 0) > 0;
    },
  };
}

/**
 * With the orders apart no transaction spans both databases, so the two services do what a saga
 * does: reserve, insert the order, and when the insert fails give the reservation back (else the
 * stock stays reserved for an order that does not exist, and the badge under-promises forever).
 */
async function placeSplit(shop: Shop, w: Workload, params: unknown[]): Promise<boolean> {
  if (!(await shop.inventory.query(RESERVE, params)).rowCount) return false;
  let orderId: string;
  try {
    const r = await shop.orders.query(
      `insert into shop.orders (sku_id, fc_id, qty, status) values ($1, $2, $3, 'placed') returning order_id`,
      params,
    );
    orderId = r.rows[0].order_id;
  } catch (err) {
    const released = await shop.inventory.query(RELEASE.cancel, params).then(
      () => 'its reservation was released',
      (e: Error) =>
        `releasing its reservation failed too (${e.message}): ${params[2]} of ${params[0]} at ${params[1]} stay reserved`,
    );
    throw new Error(`the order insert failed (${(err as Error).message}); ${released}`, { cause: err });
  }
  w.open.push({ orderId });
  return true;
}

/** With the orders apart: the order's status in its database, then its stock in the inventory's. */
async function settleSplit(shop: Shop, orderId: string, ship: boolean): Promise<boolean> {
  const o = await shop.orders.query(
    `update shop.orders set status = $2 where order_id = $1 and status = 'placed' returning sku_id, fc_id, qty`,
    [orderId, ship ? 'shipped' : 'cancelled'],
  );
  if (!o.rowCount) return false;
  const { sku_id, fc_id, qty } = o.rows[0];
  const r = await shop.inventory.query(ship ? RELEASE.ship : RELEASE.cancel, [sku_id, fc_id, qty]);
  return (r.rowCount ?? 0) > 0;
}

/** Ships or cancels one open order, releasing its reservation (and, shipped, its stock). */
function settleOp(w: Workload, ship: boolean): Op {
  const [order] = w.open.splice(w.pick(w.open.length), 1);
  return {
    kind: ship ? 'ship' : 'cancel',
    changes: 2,
    run: async (shop) => {
      if (shop.split) return settleSplit(shop, order.orderId, ship);
      const r = await shop.orders.query(
        ship
          ? `with o as (update shop.orders set status = 'shipped' where order_id = $1 and status = 'placed' returning sku_id, fc_id, qty)
             update shop.inventory i set reserved = i.reserved - o.qty, on_hand = i.on_hand - o.qty, updated_at = now()
               from o where i.sku_id = o.sku_id and i.fc_id = o.fc_id`
          : `with o as (update shop.orders set status = 'cancelled' where order_id = $1 and status = 'placed' returning sku_id, fc_id, qty)
             update shop.inventory i set reserved = i.reserved - o.qty, updated_at = now()
               from o where i.sku_id = o.sku_id and i.fc_id = o.fc_id`,
        [order.orderId],
      );
      return (r.rowCount ?? 0) > 0;
    },
  };
}

function restockOp(w: Workload): Op {
  const { sku, fc } = randomStock(w);
  const n = 1 + w.pick(20);
  return oneRowUpdate(
    'restock',
    'update shop.inventory set on_hand = on_hand + $3, updated_at = now() where sku_id = $1 and fc_id = $2',
    [sku, fc, n],
  );
}

function capacityOp(w: Workload): Op {
  const fc = fcId(w.pick(w.size.fcs));
  const cap = w.pick(8000);
  return oneRowUpdate(
    'capacity',
    'update shop.fulfillment_centers set daily_capacity = $2, updated_at = now() where fc_id = $1',
    [fc, cap],
  );
}

function lifecycleOp(w: Workload): Op {
  const sku = skuId(w.pick(w.size.skus));
  const y = w.random();
  const lifecycle = y < 0.8 ? 'active' : y < 0.9 ? 'paused' : 'discontinued';
  return oneRowUpdate('lifecycle', 'update shop.skus set lifecycle = $2, updated_at = now() where sku_id = $1', [
    sku,
    lifecycle,
  ]);
}

/** The workload's mix: mostly orders placed, shipped and cancelled; restocks; now and then capacity and lifecycle. */
function nextOp(w: Workload): Op {
  const x = w.random();
  if (x < 0.45 || (x < 0.73 && w.open.length === 0)) return placeOp(w);
  if (x < 0.73) return settleOp(w, x < 0.65);
  if (x < 0.95) return restockOp(w);
  if (x < 0.975) return capacityOp(w);
  return lifecycleOp(w);
}

/**
 * Pace: how long the next op must wait so that the changes issued so far fit the target rate
 * (0 = as fast as possible: never). Synchronous, so an op that need not wait starts without yielding.
 */
function paceDelay(rate: number, started: number, changesSoFar: number): number {
  if (rate <= 0) return 0;
  const due = started + (changesSoFar / rate) * 1000;
  return due - Date.now();
}

/** Counts an op that ran: its changes stay counted only when it changed something. */
function countRun(stats: TrafficStats, op: Op, ok: boolean): void {
  if (!ok)
    stats.changes -= op.changes; // nothing changed (no stock, already shipped…)
  else stats.byKind[op.kind] = (stats.byKind[op.kind] ?? 0) + 1;
  stats.operations++;
}

function countFailure(stats: TrafficStats, op: Op, err: unknown): void {
  stats.changes -= op.changes;
  stats.failed++;
  if (stats.failed <= 3) logger('simulator').warn(`${op.kind} failed: ${(err as Error).message}`);
}

/** Calls onProgress at most every progressEveryMs, across all connections. */
function progressReporter(opts: TrafficOptions, stats: TrafficStats, started: number): () => void {
  const due = reportThrottle(opts.progressEveryMs);
  return () => {
    if (opts.onProgress && due()) opts.onProgress({ ...stats, elapsedMs: Date.now() - started });
  };
}

export async function runTraffic(databases: ShopDatabases, opts: TrafficOptions): Promise<TrafficStats> {
  const shop = shopOf(databases);
  const random = rng(opts.seed);
  const workload: Workload = { random, pick: (n) => Math.floor(random() * n), size: opts.size, open: [] };
  const stats: TrafficStats = { operations: 0, changes: 0, failed: 0, elapsedMs: 0, byKind: {} };
  const started = Date.now();
  if (opts.size.skus === 0 || opts.size.fcs === 0)
    throw new Error('the catalogue is empty: seed it first (npm run simulate -- --seed)');

  const done = () =>
    opts.signal?.aborted ||
    (opts.changes !== undefined && stats.changes >= opts.changes) ||
    (opts.durationMs !== undefined && Date.now() - started >= opts.durationMs);

  const report = progressReporter(opts, stats, started);
  const worker = async () => {
    while (!done()) {
      const op = nextOp(workload);
      const wait = paceDelay(opts.rate, started, stats.changes);
      if (wait > 0) await sleep(wait);
      stats.changes += op.changes;
      try {
        countRun(stats, op, await op.run(shop));
      } catch (err) {
        countFailure(stats, op, err);
      }
      report();
    }
  };
  await Promise.all(Array.from({ length: opts.connections }, worker));
  stats.elapsedMs = Date.now() - started;
  return stats;
}
