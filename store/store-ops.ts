/**
 * The operations the apply script (store/apply.ts) performs, one variant per operation, with
 * fields named for what they mean. `pushOpArgs` is the only place that knows the script's wire
 * format: five ARGV per operation, a one-letter code (OP, store/names.ts) and four positional
 * values (store/lua/apply.lua runs them, one function per code). Every op also carries the Redis key it works on and `source`, the index of the
 * change (in the caller's list) it came from, for dead-lettering.
 */
import { OP } from './names';
import { LIFECYCLE_FIELD } from './keys';

interface OpBase {
  key: string;
  /** Index of the source change (in the caller's list) this op came from, for dead-lettering; -1 for none. */
  source: number;
}

/** S: a plain versioned field (FC capacity, region rank), written if the change is newer. */
export interface VersionedOp extends OpBase {
  kind: 'versioned';
  field: string;
  /** The encoded value (store/field-codec.ts): an integer or the tombstone. */
  value: string;
  /** The outbox id of the change: the field's version. */
  version: number;
  txid: string;
}

/** A: a SKU's available units at an FC (field `fc`); a new key gets the tombstone TTL. */
export interface StockOp extends OpBase {
  kind: 'stock';
  fc: string;
  value: string;
  version: number;
  txid: string;
}

/** Y, or U when `update`: a SKU's lifecycle (field LIFECYCLE_FIELD), which sets or clears the key's TTL. */
export interface LifecycleOp extends OpBase {
  kind: 'lifecycle';
  /** The lifecycle code (store/field-codec.ts): a, p, d, or the tombstone. */
  code: string;
  version: number;
  txid: string;
  /** An update of an existing SKU: if the store no longer knows it, a rebuild is requested. */
  update: boolean;
  /** A refresh (R) of the skus row: a discontinued SKU the store no longer knows is written as D. */
  refresh?: boolean;
}

/** L: add `delta` to a load counter if its delivery position (batch, txid, id) is past the counter's. */
export interface LoadDeltaOp extends OpBase {
  kind: 'loadDelta';
  delta: number;
  txid: string;
  /** The outbox id of the change. */
  id: number;
  /** The drain batch the change was delivered in. */
  batch: string;
}

/** M: the load deltas of one counter and batch in one call, each still checked as an L op would be. */
export interface LoadDeltasOp extends OpBase {
  kind: 'loadDeltas';
  /** "delta:txid:id,…" in stream order. */
  deltas: string;
  batch: string;
  /** The source of every delta merged in (`source` is the first's). */
  sources: number[];
}

/** B: a backfill fill of a field from a snapshot, only if the field is absent. */
export interface FillOp extends OpBase {
  kind: 'fill';
  field: string;
  value: string;
  /** The snapshot version the value is stamped with: "s<k>" (k: the snapshot's tag in {p}snaps). */
  snapshot: string;
  /** Which TTL rules apply: a lifecycle's (Y), a SKU stock's (A), or none. */
  rule: 'lifecycle' | 'stock' | 'plain';
}

/** C: a backfill sets a load counter to `count` as of a delivery position and snapshot. */
export interface LoadSetOp extends OpBase {
  kind: 'loadSet';
  /** The counter's value (a decimal integer). */
  count: string;
  /** The drain's next delivery: "batch:txid:id". */
  position: string;
  /** The snapshot's tag k in {p}snaps (no "s"). */
  snapshot: string;
}

/**
 * Z: the loads of a refill are complete from day `from` on, as of a delivery position: every
 * counter of the partition from that day on written before it is set to 0 (the refill's own sets,
 * at or after it, say the rest), and a counter absent now that a delta reaches later starts from 0
 * as of it. `key` is the partition's load index.
 */
export interface LoadsCompleteOp extends OpBase {
  kind: 'loadsComplete';
  /** The first day (yyyymmdd) the refill read. */
  from: string;
  /** "batch:txid:id", as a load set's. */
  position: string;
  /** The backfill snapshot's tag, or '' for a load set re-read from a source captured from the WAL. */
  snapshot: string;
}

/** R: a dead-letter retry of a load delta, applied once per `mark`, and not if a backfill's snapshot saw txid. */
export interface LoadRetryOp extends OpBase {
  kind: 'loadRetry';
  delta: number;
  /** The once-marker: "<dead letter id>:<effect number>". */
  mark: string;
  txid: string;
  /**
   * The change's outbox id: a load set re-read from a source captured from the WAL at a later
   * outbox position (txid, id) saw the change, and the delta is not applied on top of it.
   */
  id: string;
}

export type StoreOp =
  VersionedOp | StockOp | LifecycleOp | LoadDeltaOp | LoadDeltasOp | FillOp | LoadSetOp | LoadsCompleteOp | LoadRetryOp;

/** What failures and fenced operations report: a merged M op is reported as the L ops it holds. */
export type ReportedKind = Exclude<StoreOp['kind'], 'loadDeltas'>;

/** Appends the op's five script arguments (code, then four positional values) to `args`. */
export function pushOpArgs(args: (string | number)[], op: StoreOp): void {
  switch (op.kind) {
    case 'versioned':
      args.push(OP.versioned, op.field, op.value, String(op.version), op.txid);
      return;
    case 'stock':
      args.push(OP.stock, op.fc, op.value, String(op.version), op.txid);
      return;
    case 'lifecycle':
      args.push(
        op.update ? OP.lifecycleUpdate : op.refresh ? OP.lifecycleRefresh : OP.lifecycle,
        LIFECYCLE_FIELD,
        op.code,
        String(op.version),
        op.txid,
      );
      return;
    case 'loadDelta':
      args.push(OP.loadDelta, String(op.delta), op.txid, String(op.id), op.batch);
      return;
    case 'loadDeltas':
      args.push(OP.loadDeltas, op.deltas, '-', '-', op.batch);
      return;
    case 'fill':
      args.push(
        OP.fill,
        op.field,
        op.value,
        op.snapshot,
        op.rule === 'lifecycle' ? 'y' : op.rule === 'stock' ? 'a' : 's',
      );
      return;
    case 'loadSet':
      args.push(OP.loadSet, op.count, op.position, '', op.snapshot);
      return;
    case 'loadsComplete':
      args.push(OP.loadsComplete, op.from, op.position, '', op.snapshot);
      return;
    case 'loadRetry':
      args.push(OP.loadRetry, String(op.delta), op.mark, op.txid, op.id);
      return;
    default: {
      const unknown: never = op;
      throw new Error(`unknown store operation ${(unknown as { kind: string }).kind}`);
    }
  }
}
