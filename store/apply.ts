/**
 * Applies feature updates to Redis with an atomic version check per field (a Lua script), so
 * at-least-once delivery gives exactly-once effect: a duplicate or older change changes nothing.
 * (Feast's Redis store reads, then writes: two writers can interleave. Here the check and the
 * write are one atomic step inside Redis.)
 *
 * Updates are folded first (per field only the highest version can matter), then sent in chunks
 * of `chunk` operations per script call, all chunks in one pipeline: one network round trip per
 * batch, while no single call holds Redis long enough to delay readers noticeably.
 */
import type { FeatureUpdate } from '../features/definitions';
import { intCode, lifecycleCode } from './field-codec';
import { CAPACITY_FIELD, LIFECYCLE_FIELD, PartitionKeys, StoreKeys } from './keys';
import { pipelineByNode, StoreRedis } from './redis-client';
import { defineScripts, runScript, SCRIPTS } from './scripts';
import { DeliveryPosition, positionArgs } from './store-position';
import {
  FillOp,
  LifecycleOp,
  LoadDeltaOp,
  LoadDeltasOp,
  LoadSetOp,
  LoadsCompleteOp,
  pushOpArgs,
  ReportedKind,
  StockOp,
  StoreOp,
  VersionedOp,
} from './store-ops';

export type { StoreOp } from './store-ops';

// One script call (store/lua/apply.lua: its header lists the arguments and every operation) works
// in one partition (one hash slot: store/keys.ts): it checks each operation's version against what
// the field holds and writes it, atomically.

export interface ApplyOptions {
  chunk: number;
  tombstoneTtlS: number;
  loadTtlS: number;
  /**
   * replay: re-write values whose version equals the stored one (fixed feature logic); replay and
   * retry: changes older than the deletion fence are not written into absent fields (fenced).
   * drain: a rejected operation's subject is held in the same call (store/held.ts); backfill: as
   * drain, without the hold (a backfill that fails is retried, with no dead letter to release it).
   */
  mode?: 'drain' | 'backfill' | 'replay' | 'retry';
  /** The drain batch the changes belong to: load deltas are ordered by (batch, txid, id). */
  batch?: string;
  /** Recorded as the store's applied position by the last call, atomically with the changes. */
  position?: DeliveryPosition;
  /**
   * The position the drain checked every partition against before this chunk: a partition now
   * below it (it lost writes in between) refuses the call, atomically, before writing anything.
   */
  checked?: DeliveryPosition;
  /** As `checked`, per partition (each against its own drain shard's cursor: a dead letter re-applied). */
  checkedOf?: (partition: PartitionKeys) => DeliveryPosition | null;
  /** What the drain chunk delivered (activities/drain/adopted-chunk.ts), recorded with `position`. */
  chunkPrint?: string;
}

export interface ApplyResult {
  /** Operations that changed the store (newer than what it held). */
  applied: number;
  /** Operations sent after folding. */
  sent: number;
  /** Changes Redis rejected, by the caller's source index. */
  failures: { source: number; error: string; key: string; kind: ReportedKind }[];
  /** Source indexes of lifecycle changes that made a SKU the store had forgotten active again. */
  rebuild: number[];
  /** Operations refused by the deletion fence (nothing written): re-read or re-emit their rows. */
  fenced: { source: number; key: string; kind: ReportedKind }[];
}

type ApplyReply = [number, (number | string)[], number[], number[]];

type ChangeOp = VersionedOp | StockOp | LifecycleOp | LoadDeltaOp | LoadSetOp | LoadsCompleteOp;

/**
 * The operations of one change: one in the SKU's partition for a SKU feature; one per partition
 * for FC capacity, region ranks and loads, which every partition keeps a copy of (store/keys.ts).
 */
function toOps(keys: StoreKeys, u: FeatureUpdate, source: number, batch = '0'): ChangeOp[] {
  switch (u.feature) {
    case 'sku.lifecycle':
      return [
        {
          kind: 'lifecycle',
          key: keys.sku(u.sku),
          code: lifecycleCode(u.value),
          version: u.version,
          txid: u.txid,
          update: u.update === true,
          ...(u.refresh ? { refresh: true } : {}),
          source,
        },
      ];
    case 'sku.available':
      return [
        {
          kind: 'stock',
          key: keys.sku(u.sku),
          fc: u.fc,
          value: intCode(u.value),
          version: u.version,
          txid: u.txid,
          source,
        },
      ];
    case 'fc.capacity':
      return keys.partitions.map((p) => ({
        kind: 'versioned',
        key: p.fc(u.fc),
        field: CAPACITY_FIELD,
        value: intCode(u.value),
        version: u.version,
        txid: u.txid,
        source,
      }));
    case 'region.rank':
      return keys.partitions.map((p) => ({
        kind: 'versioned',
        key: p.region(u.region),
        field: u.fc,
        value: intCode(u.value),
        version: u.version,
        txid: u.txid,
        source,
      }));
    case 'fc.loadSet':
    case 'fc.loadsComplete':
      return refillOps(keys, u, source, batch);
    case 'fc.load':
      return keys.partitions.map((p) => ({
        kind: 'loadDelta',
        key: p.load(u.fc, u.day),
        delta: u.delta,
        txid: u.txid,
        id: u.id,
        batch,
        source,
      }));
  }
}

/**
 * A refill's load set, and its completeness (op Z), at the change's delivery position: deltas
 * before it are in the sum, deltas after add to it.
 */
function refillOps(
  keys: StoreKeys,
  u: Extract<FeatureUpdate, { feature: 'fc.loadSet' | 'fc.loadsComplete' }>,
  source: number,
  batch: string,
): ChangeOp[] {
  const position = `${batch}:${u.txid}:${u.id}`;
  return keys.partitions.flatMap((p): ChangeOp[] => {
    const complete = (from: string): LoadsCompleteOp => {
      return { kind: 'loadsComplete', key: p.loadIndex, from, position, snapshot: '', source };
    };
    // a refill that found no order: every counter from its first day on is 0 as of here
    if (u.feature === 'fc.loadsComplete') return [complete(u.from)];
    const set: ChangeOp = {
      kind: 'loadSet',
      key: p.load(u.fc, u.day),
      count: String(u.value),
      position,
      snapshot: '',
      source,
    };
    // the refill's last set: its own value, then what the refill did not set is 0
    return u.completeFrom === undefined ? [set] : [set, complete(u.completeFrom)];
  });
}

/** The hash field a versioned change writes. */
function fieldOf(op: VersionedOp | StockOp | LifecycleOp): string {
  return op.kind === 'versioned' ? op.field : op.kind === 'stock' ? op.fc : LIFECYCLE_FIELD;
}

/** A backfill fill of one feature value from snapshot version `snapshot` ("s<k>"), in every partition it lives in. */
export function toBackfillOps(keys: StoreKeys, u: FeatureUpdate, snapshot: string, source: number): FillOp[] {
  return toOps(keys, u, source).flatMap((op): FillOp[] => {
    switch (op.kind) {
      case 'loadDelta':
      case 'loadSet':
      case 'loadsComplete':
        return []; // counters are set whole, under the drain lock
      case 'lifecycle':
        return [
          { kind: 'fill', key: op.key, field: LIFECYCLE_FIELD, value: op.code, snapshot, rule: 'lifecycle', source },
        ];
      case 'stock':
        return [{ kind: 'fill', key: op.key, field: op.fc, value: op.value, snapshot, rule: 'stock', source }];
      case 'versioned':
        return [{ kind: 'fill', key: op.key, field: op.field, value: op.value, snapshot, rule: 'plain', source }];
    }
  });
}

/**
 * Folds a batch: for a versioned field only the highest version survives; load deltas are kept
 * in stream order (each is applied at most once by its position, so none may be merged away).
 *
 * A lifecycle update that survives a folded-away insert of its SKU is no longer an update: the
 * apply script asks for a stock rebuild when an update finds no lifecycle (the key expired), and
 * here the missing lifecycle is only the insert this fold dropped, whose stock follows it as
 * changes of their own. Left an update, a SKU created and edited between two drain passes got a
 * needless rebuild, and its reads were answered unknown until the rebuild ended. Only a true
 * insert (op I): a refresh (R) of the skus row alone (a dead-letter retry, a verify repair) says
 * nothing about the SKU's stock, and the update over it must still check the key.
 */
export function foldOps(keys: StoreKeys, updates: { update: FeatureUpdate; source: number }[], batch = '0'): StoreOp[] {
  const latest = new Map<string, VersionedOp | StockOp | LifecycleOp[]>();
  const deltas: (LoadDeltaOp | LoadSetOp | LoadsCompleteOp)[] = [];
  // lifecycle ops of SKU inserts, and the updates folded over one (which stand for it from then on)
  const inserts = new WeakSet<object>();
  for (const { update, source } of updates) {
    for (const op of toOps(keys, update, source, batch)) {
      if (op.kind === 'lifecycle' && update.feature === 'sku.lifecycle' && update.insert) inserts.add(op);
      if (op.kind === 'loadDelta' || op.kind === 'loadSet' || op.kind === 'loadsComplete') {
        deltas.push(op);
        continue;
      }
      const id = `${op.key}\u0000${fieldOf(op)}`;
      const prev = latest.get(id);
      if (op.kind === 'lifecycle') {
        if (Array.isArray(prev)) prev.push(op);
        else latest.set(id, [op]);
      } else if (!prev || Array.isArray(prev)) latest.set(id, op);
      else latest.set(id, prev.version < op.version ? foldedOver(op, prev, inserts) : foldedOver(prev, op, inserts));
    }
  }
  const kept: StoreOp[] = [];
  for (const v of latest.values()) kept.push(...(Array.isArray(v) ? foldLifecycle(v, inserts) : [v]));
  return [...kept, ...deltas];
}

/**
 * A SKU's lifecycle changes of one batch, in version order, each run of one kind folded to its
 * newest (see foldedOver). Not folded across a change of kind: the apply script starts a
 * tombstone's TTL when the key becomes one and keeps it through later writes of the same state
 * (apply.lua, lifecycleTtl), so discontinued, active, discontinued again folded to the last would
 * keep the first discontinuation's TTL, and the key could expire moments after the SKU was last
 * active, before the deletion fence covers that change (store/fence.ts).
 */
function foldLifecycle(ops: LifecycleOp[], inserts: WeakSet<object>): LifecycleOp[] {
  const kindOf = (op: LifecycleOp) => (op.code === 'd' || op.code === 'D' ? 'd' : op.code === 'x' ? 'x' : 'live');
  const out: LifecycleOp[] = [];
  for (const op of [...ops].sort((a, b) => a.version - b.version)) {
    const last = out[out.length - 1];
    if (last && kindOf(last) === kindOf(op)) out[out.length - 1] = foldedOver(op, last, inserts);
    else out.push(op);
  }
  return out;
}

/**
 * `kept`, the newer of two changes of one field, folded over `dropped` (see foldOps). An update
 * over an insert stands for the insert; a refresh or delete over an update checks the key as the
 * update would have (the update's lost-key check must not be folded away: a reactivation re-read
 * by a repair in the same batch would otherwise land on an expired key without its rebuild).
 */
function foldedOver<T extends VersionedOp | StockOp | LifecycleOp>(kept: T, dropped: T, inserts: WeakSet<object>): T {
  if (kept.kind !== 'lifecycle' || dropped.kind !== 'lifecycle') return kept;
  if (kept.update && inserts.has(dropped)) {
    const asInsert = { ...kept, update: false };
    inserts.add(asInsert);
    return asInsert;
  }
  if (!kept.update && !inserts.has(kept) && dropped.update) return { ...kept, update: true };
  return kept;
}

/**
 * Merges the load deltas of each counter into one M op (in stream order; every delta is still
 * checked on its own inside the script). Deltas of different batches are never merged.
 */
export function mergeLoadDeltas(ops: StoreOp[]): StoreOp[] {
  const out: StoreOp[] = [];
  const merged = new Map<string, LoadDeltasOp>();
  for (const op of ops) {
    if (op.kind !== 'loadDelta') {
      // a load set ends its counter's run of deltas: the deltas after it are merged after it
      // (and a refill's completeness, which may zero any counter, ends every run)
      if (op.kind === 'loadSet') merged.delete(op.key);
      if (op.kind === 'loadsComplete') merged.clear();
      out.push(op);
      continue;
    }
    const part = `${op.delta}:${op.txid}:${op.id}`;
    const m = merged.get(op.key);
    if (m && m.batch === op.batch) {
      m.deltas += `,${part}`;
      m.sources.push(op.source);
      continue;
    }
    const mop: LoadDeltasOp = {
      kind: 'loadDeltas',
      key: op.key,
      deltas: part,
      batch: op.batch,
      source: op.source,
      sources: [op.source],
    };
    merged.set(op.key, mop);
    out.push(mop);
  }
  return out;
}

/** One script call: up to `chunk` operations of one partition, and maybe the position to record. */
interface ApplyCall {
  partition: PartitionKeys;
  ops: StoreOp[];
  position: DeliveryPosition | null;
}

/**
 * Cuts the operations into script calls, per partition. With a position, every partition records
 * it (in its last call, or in a call of its own when the batch wrote nothing there): each
 * partition's position says how far that partition got, and rewind detection compares them all.
 */
function planCalls(keys: StoreKeys, ops: StoreOp[], opts: ApplyOptions): ApplyCall[] {
  const byPartition = new Map<PartitionKeys, StoreOp[]>();
  for (const op of ops) {
    const p = keys.ofKey(op.key);
    const list = byPartition.get(p);
    if (list) list.push(op);
    else byPartition.set(p, [op]);
  }
  // A drain shard's view of the store (outbox/shards.ts) holds its own partitions: an operation
  // for another one would be silently dropped below, so it is a bug worth stopping for.
  if (keys.partial)
    for (const p of byPartition.keys())
      if (!keys.partitions.includes(p))
        throw new Error(`a store operation for partition ${p.index} reached a drain shard that does not own it`);
  const calls: ApplyCall[] = [];
  for (const partition of keys.partitions) {
    const list = byPartition.get(partition) ?? [];
    if (list.length === 0 && !opts.position) continue;
    const first = calls.length;
    for (let i = 0; i < list.length; i += opts.chunk)
      calls.push({ partition, ops: list.slice(i, i + opts.chunk), position: null });
    if (calls.length === first) calls.push({ partition, ops: [], position: null }); // a position and no changes
    calls[calls.length - 1].position = opts.position ?? null;
  }
  return calls;
}

export async function applyOps(
  redis: StoreRedis,
  keys: StoreKeys,
  unmerged: StoreOp[],
  opts: ApplyOptions,
): Promise<ApplyResult> {
  const result: ApplyResult = { applied: 0, sent: unmerged.length, failures: [], rebuild: [], fenced: [] };
  const calls = planCalls(keys, mergeLoadDeltas(unmerged), opts);
  if (calls.length === 0) return result;
  defineScripts(redis);
  const replies = await pipelineByNode(
    redis,
    calls,
    (call) => call.partition.pos,
    (pipeline, call) => {
      const args: (string | number)[] = [call.partition.pos];
      for (const op of call.ops) args.push(op.key);
      args.push(opts.tombstoneTtlS, opts.loadTtlS, opts.mode ?? 'drain', call.partition.prefix);
      args.push(
        ...positionArgs(call.position),
        ...positionArgs(opts.checkedOf?.(call.partition) ?? opts.checked ?? null),
        call.position ? (opts.chunkPrint ?? '') : '',
        // the batch delivered in (every call of it, not only the one that records the position)
        opts.position?.batch ?? '',
      );
      for (const op of call.ops) pushOpArgs(args, op);
      void runScript(pipeline, SCRIPTS.apply, call.ops.length + 1, ...args);
    },
  );
  replies.forEach(([err, reply], n) => {
    // A whole call failing (connection lost, script error) is not a data problem: raise it, the
    // activity retries, and the version checks make the retry harmless.
    if (err) throw err;
    const ops = calls[n].ops;
    const [applied, failed, rebuild, fenced] = reply as ApplyReply;
    result.applied += applied;
    for (const i of rebuild) result.rebuild.push(ops[Number(i) - 1].source);
    for (const i of fenced) {
      const op = ops[Number(i) - 1];
      // only versioned writes and fills are fenced, never an M op
      result.fenced.push({ source: op.source, key: op.key, kind: op.kind === 'loadDeltas' ? 'loadDelta' : op.kind });
    }
    for (let i = 0; i < failed.length; i += 2) {
      const op = ops[Number(failed[i]) - 1];
      const error = `redis rejected ${op.key}: ${failed[i + 1]}`;
      // a merged op failed as a whole: every delta in it is owed (reported as the L op it was)
      if (op.kind === 'loadDeltas')
        for (const source of op.sources) result.failures.push({ source, error, key: op.key, kind: 'loadDelta' });
      else result.failures.push({ source: op.source, error, key: op.key, kind: op.kind });
    }
  });
  return result;
}

/**
 * The refusal of an apply call whose partition went below the position it was checked at
 * (ApplyOptions.checked / checkedOf; store/lua/apply.lua): the call wrote nothing.
 */
export const STORE_BEHIND_REPLY = /\bFBBEHIND\b/;

export async function applyUpdates(
  redis: StoreRedis,
  keys: StoreKeys,
  updates: { update: FeatureUpdate; source: number }[],
  opts: ApplyOptions,
): Promise<ApplyResult> {
  return applyOps(redis, keys, foldOps(keys, updates, opts.batch), opts);
}
