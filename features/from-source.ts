/**
 * Source change (one outbox row) -> feature updates. Pure: no I/O, so it is unit-tested with
 * plain objects and shared by every path that reads change data.
 *
 * Anything that does not fit the source contract (unknown table or operation, missing or
 * mistyped columns, impossible values) throws MalformedChange; the drain sends that row to the
 * dead-letter table with the message and carries on.
 */
import { z } from 'zod';
import { isTruncate } from '../capture/source-tables';
import { FeatureUpdate, ID_PATTERN, LOAD_STATUSES, NotATimestamp, placedDay, RANK_NULL } from './definitions';

export class MalformedChange extends Error {
  override name = 'MalformedChange';
}

/** An outbox row as the drain reads it. */
export interface OutboxRow {
  id: string; // bigint as text
  txid: string; // xid8 as text
  tbl: string;
  op: string;
  key: string;
  image: unknown;
  old_image: unknown;
  /** When the change was written (ms since epoch); a number, not a Date: parsed for every row. */
  created_ms: number;
}

const id = z.string().regex(ID_PATTERN, 'an id of letters, digits and . _ : -, 1 to 128 characters');
const int = z.number().int();
const SkuRow = z.object({ sku_id: id, lifecycle: z.enum(['active', 'paused', 'discontinued']) });
const FcRow = z.object({ fc_id: id, daily_capacity: int.min(0) });
const RegionFcRow = z.object({ region: id, fc_id: id, rank: int.nullable() });
const InventoryRow = z.object({ sku_id: id, fc_id: id, on_hand: int.min(0), reserved: int.min(0) });
const OrderRow = z.object({
  fc_id: z.string().nullable(),
  qty: int.min(1).nullable(),
  status: z.string().nullable(),
  placed_at: z.string(), // parsed once, in orderContribution (a second parse per row showed in profiles)
});
const KeyOnly = {
  skus: z.object({ sku_id: id }),
  fulfillment_centers: z.object({ fc_id: id }),
  region_fc: z.object({ region: id, fc_id: id }),
  inventory: z.object({ sku_id: id, fc_id: id }),
};

function parse<T>(schema: z.ZodType<T>, image: unknown, what: string): T {
  const r = schema.safeParse(image);
  if (!r.success) {
    const why = r.error.issues.map((i) => `${i.path.join('.') || '(row)'}: ${i.message}`).join('; ');
    throw new MalformedChange(`${what}: ${why}`);
  }
  return r.data;
}

/**
 * The (fc, day, qty) an order row adds to the load, or null when it adds nothing: not a counted
 * status, or placed on no day (placed_at infinity, BC, past year 275760: features/definitions.ts).
 */
function orderContribution(
  row: z.infer<typeof OrderRow>,
  what: string,
): { fc: string; day: string; qty: number } | null {
  let day: string | null;
  try {
    day = placedDay(row.placed_at);
  } catch (err) {
    if (err instanceof NotATimestamp) throw new MalformedChange(`${what}: placed_at: ${err.message}`);
    throw err;
  }
  if (day === null || row.fc_id === null || row.qty === null || row.status === null || !LOAD_STATUSES.has(row.status))
    return null;
  return { fc: row.fc_id, day, qty: row.qty };
}

/** What every table's mapping gets: the row, its version (the outbox id) and a name for errors. */
interface Change {
  row: OutboxRow;
  version: number;
  where: string;
  deleted: boolean;
}

export function featureUpdatesFrom(row: OutboxRow): FeatureUpdate[] {
  const version = Number(row.id);
  if (!Number.isSafeInteger(version) || version <= 0)
    throw new MalformedChange(`outbox id ${row.id} is not a positive safe integer`);
  const where = `${row.tbl} ${row.op} ${row.key}`;
  // The drain applies a TRUNCATE itself (it empties and refills the store: activities/drain); a
  // TRUNCATE has no rows to turn into feature updates.
  if (row.op === 'T')
    throw new MalformedChange(
      isTruncate(row)
        ? `TRUNCATE of shop.${row.tbl}: not a row change (the drain empties and refills the store for it)`
        : `TRUNCATE of unknown source table '${row.tbl}': not a table of the contract, nothing is emptied for it`,
    );
  // R (refresh): the current row re-emitted by the pipeline itself (rebuild on reactivation,
  // backfill); it carries the row as it is and is applied like an update.
  // S (load set): an FC's whole load of a day, re-read from a source captured from the WAL.
  if (row.op === 'S') return loadSet(row, version, where);
  if (row.op !== 'I' && row.op !== 'U' && row.op !== 'D' && row.op !== 'R')
    throw new MalformedChange(`${where}: unknown operation '${row.op}'`);
  if (row.op === 'R' && row.tbl === 'orders')
    throw new MalformedChange(`${where}: orders cannot be refreshed row by row (the load is a sum of deltas)`);
  const fromTable = Object.hasOwn(FROM_TABLE, row.tbl) ? FROM_TABLE[row.tbl as SourceTable] : undefined;
  if (!fromTable) throw new MalformedChange(`${where}: unknown source table '${row.tbl}'`);
  return fromTable({ row, version, where, deleted: row.op === 'D' });
}

type SourceTable = 'skus' | 'inventory' | 'fulfillment_centers' | 'region_fc' | 'orders';

const yyyymmdd = z.string().regex(/^\d{8,}$/);
// fc_id as an order's (OrderRow): unchecked, since an order's load counts under whatever FC it names
const LoadSetRow = z.object({
  fc_id: z.string(),
  day: yyyymmdd,
  load: int.min(0),
  complete_from: yyyymmdd.optional(),
});
// a refill that found no order: its completeness alone (capture/chunk-rows.ts)
const LoadsCompleteRow = z.object({ complete_from: yyyymmdd }).strict();

function loadSet(row: OutboxRow, version: number, where: string): FeatureUpdate[] {
  if (row.tbl !== 'orders') throw new MalformedChange(`${where}: a load set is a change of orders`);
  const image = row.image as Record<string, unknown> | null;
  if (image !== null && typeof image === 'object' && !('fc_id' in image)) {
    const c = parse(LoadsCompleteRow, row.image, where);
    return [{ feature: 'fc.loadsComplete', from: c.complete_from, txid: row.txid, id: version }];
  }
  const r = parse(LoadSetRow, row.image, where);
  const set = { feature: 'fc.loadSet' as const, fc: r.fc_id, day: r.day, value: r.load, txid: row.txid, id: version };
  return [r.complete_from === undefined ? set : { ...set, completeFrom: r.complete_from }];
}

/** One mapping per source table. */
const FROM_TABLE: Record<SourceTable, (c: Change) => FeatureUpdate[]> = {
  skus({ row, version, where, deleted }) {
    if (deleted) {
      const k = parse(KeyOnly.skus, row.image, where);
      return [{ feature: 'sku.lifecycle', sku: k.sku_id, value: null, version, txid: row.txid }];
    }
    const r = parse(SkuRow, row.image, where);
    const update =
      row.op === 'U' ? { update: true } : row.op === 'I' ? { insert: true } : row.op === 'R' ? { refresh: true } : {};
    return [{ feature: 'sku.lifecycle', sku: r.sku_id, value: r.lifecycle, version, txid: row.txid, ...update }];
  },
  inventory({ row, version, where, deleted }) {
    if (deleted) {
      const k = parse(KeyOnly.inventory, row.image, where);
      return [{ feature: 'sku.available', sku: k.sku_id, fc: k.fc_id, value: null, version, txid: row.txid }];
    }
    const r = parse(InventoryRow, row.image, where);
    const value = r.on_hand - r.reserved;
    return [{ feature: 'sku.available', sku: r.sku_id, fc: r.fc_id, value, version, txid: row.txid }];
  },
  fulfillment_centers({ row, version, where, deleted }) {
    if (deleted) {
      const k = parse(KeyOnly.fulfillment_centers, row.image, where);
      return [{ feature: 'fc.capacity', fc: k.fc_id, value: null, version, txid: row.txid }];
    }
    const r = parse(FcRow, row.image, where);
    return [{ feature: 'fc.capacity', fc: r.fc_id, value: r.daily_capacity, version, txid: row.txid }];
  },
  region_fc({ row, version, where, deleted }) {
    if (deleted) {
      const k = parse(KeyOnly.region_fc, row.image, where);
      return [{ feature: 'region.rank', region: k.region, fc: k.fc_id, value: null, version, txid: row.txid }];
    }
    const r = parse(RegionFcRow, row.image, where);
    const value = r.rank ?? RANK_NULL;
    return [{ feature: 'region.rank', region: r.region, fc: r.fc_id, value, version, txid: row.txid }];
  },
  orders: orderLoadDeltas,
};

/**
 * The load changes by (new contribution - old contribution); an insert has no old row and a
 * delete no new one. Updates need the before-image, which the capture keeps for orders.
 * (Written without a Map or a closure per row: this runs for every order change.)
 */
function orderLoadDeltas({ row, version, where }: Change): FeatureUpdate[] {
  const before =
    row.op === 'I'
      ? null
      : orderContribution(
          parse(OrderRow, row.op === 'D' ? row.image : row.old_image, `${where} (before-image)`),
          `${where} (before-image)`,
        );
  const after = row.op === 'D' ? null : orderContribution(parse(OrderRow, row.image, where), where);
  if (before && after && before.fc === after.fc && before.day === after.day)
    return after.qty !== before.qty ? [loadDelta(row, version, after, after.qty - before.qty)] : [];
  const out: FeatureUpdate[] = [];
  if (before) out.push(loadDelta(row, version, before, -before.qty));
  if (after) out.push(loadDelta(row, version, after, after.qty));
  return out;
}

function loadDelta(row: OutboxRow, id: number, at: { fc: string; day: string }, delta: number): FeatureUpdate {
  return { feature: 'fc.load', fc: at.fc, day: at.day, delta, txid: row.txid, id };
}
