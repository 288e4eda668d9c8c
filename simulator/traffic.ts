/**
 * Order-service traffic at a target rate of source changes per second: placing orders (insert +
 * reserve in one transaction), shipping, cancelling, restocking, capacity and lifecycle changes.
 * Several connections run at once, so transactions commit out of id order, as in production.
 * The rules here mirror what the order service does; the pipeline never assumes them.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { CatalogueSize, fcId, skuFcIndexes, skuId } from './catalogue';

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
  /** Called about once a second. */
  onProgress?: (s: TrafficStats) => void;
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

type Op = { kind: string; changes: number; run: (c: pg.Pool) => Promise<boolean> };

/** An operation that updates one row: it happened when the row was there. */
const oneRowUpdate = (kind: string, sql: string, params: unknown[]): Op => ({
  kind,
  changes: 1,
  run: async (c) => ((await c.query(sql, params)).rowCount ?? 0) > 0,
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

/** Places an order: insert + reserve in one statement, only when the stock is there. */
function placeOp(w: Workload): Op {
  const { sku, fc } = randomStock(w);
  const qty = 1 + w.pick(3);
  return {
    kind: 'place',
    changes: 2,
    run: async (c) => {
      const r = await c.query(
        `with inv as (update shop.inventory set reserved = reserved + $3, updated_at = now()
                       where sku_id = $1 and fc_id = $2 and on_hand - reserved >= $3 returning 1)
         insert into shop.orders (sku_id, fc_id, qty, status) select $1, $2, $3, 'placed' from inv returning order_id`,
        [sku, fc, qty],
      );
      if (r.rowCount) w.open.push({ orderId: r.rows[0].order_id });
      return (r.rowCount ?? 0) > 0;
    },
  };
}

/** Ships or cancels one open order, releasing its reservation (and, shipped, its stock). */
function settleOp(w: Workload, ship: boolean): Op {
  const [order] = w.open.splice(w.pick(w.open.length), 1);
  return {
    kind: ship ? 'ship' : 'cancel',
    changes: 2,
    run: async (c) => {
      const r = await c.query(
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
  if (stats.failed <= 3) console.warn(`simulator: ${op.kind} failed: ${(err as Error).message}`);
}

/** Calls onProgress at most once a second, across all connections. */
function progressReporter(opts: TrafficOptions, stats: TrafficStats, started: number): () => void {
  let lastReport = Date.now();
  return () => {
    if (opts.onProgress && Date.now() - lastReport >= 1000) {
      lastReport = Date.now();
      opts.onProgress({ ...stats, elapsedMs: Date.now() - started });
    }
  };
}

export async function runTraffic(pool: pg.Pool, opts: TrafficOptions): Promise<TrafficStats> {
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
        countRun(stats, op, await op.run(pool));
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
