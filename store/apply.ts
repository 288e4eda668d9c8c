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
import { DeliveryPosition, positionArgs } from './store-position';
import {
  FillOp,
  LifecycleOp,
  LoadDeltaOp,
  LoadDeltasOp,
  pushOpArgs,
  ReportedKind,
  StockOp,
  StoreOp,
  VersionedOp,
} from './store-ops';

export type { StoreOp } from './store-ops';

// One call works in one partition (one hash slot: store/keys.ts). KEYS[1] is the partition's
// position key (it routes the call on a cluster, and is declared even when no operation is sent),
// KEYS[i + 1] the key of operation i. ARGV[1] tombstone TTL, ARGV[2] load-counter TTL past its day's end, ARGV[3]
// mode ("drain", "replay" or "retry": see the deletion fence below), ARGV[4] the partition's key prefix, ARGV[5..7] the delivery position to record
// as the store's applied position once the operations are done ('' for none: see
// store/store-position.ts), ARGV[8..10] the position the drain checked before this chunk ('' for
// none): a partition whose own position is now below it lost writes since the check (its node
// failed over, or restarted from an old file, in between), so the call refuses with FBBEHIND and
// writes nothing; the retry's check then finds the partition behind. Then five ARGV per operation: its code and four values, encoded from a
// StoreOp by pushOpArgs (store/store-ops.ts). Codes and op kinds: S versioned, A stock, Y/U
// lifecycle, L loadDelta, M loadDeltas, B fill, C loadSet, R loadRetry.
//
// Versions. A field holds "value|version": the outbox id of the change that wrote it, or
// "s<k>" when a backfill wrote it from snapshot k (descriptor "xmin:xmax:xip,…" in {p}snaps).
// An incoming change (id, txid) is newer than an id if its id is higher (in replay mode: not
// lower, so a replay re-writes values with fixed logic), and newer than a snapshot value if that
// snapshot did not see its transaction. A pruned snapshot counts as older than everything.
//
//   S field value id txid     a plain versioned field (FC capacity, region rank)
//   A fc value id txid        a SKU's available units at an FC. On a key that does not exist the
//                             new key gets the tombstone TTL: stock of a SKU the store does not
//                             know (tombstone expired, lifecycle not arrived yet) must not live
//                             forever; the lifecycle's arrival makes the key persist.
//   Y # code id txid          a SKU's lifecycle (field LIFECYCLE_FIELD); U the same for an update of
//                             an existing SKU, which raises a rebuild (below). d (discontinued) and x (deleted) start the key's
//                             TTL (an expiring tombstone); a and p make it persist. Becoming a/p on
//                             a key with no lifecycle (tombstone expired) is reported: that SKU's
//                             stock must be rebuilt.
//   L delta txid id batch     add delta to a load counter if its delivery position (batch, txid,
//                             id) is past the counter's and the counter's snapshot (if a backfill
//                             set it) did not see txid. Positions are monotone: the drain delivers
//                             snapshot deltas in batch order, each in (txid, id) order.
//   M deltas - - batch        the L deltas of one counter in this call, "delta:txid:id,…" in stream
//                             order: each is checked exactly as an L op would be (against the
//                             counter's running position and snapshot), then one HINCRBY of the
//                             sum and one position write. Same effect as the L ops one by one, with
//                             a few Redis calls per counter instead of five per delta (a backlog's
//                             orders hit a few FC-day counters thousands of times).
//   B field value s<k> kind   backfill: fill the field from snapshot k only if it is absent
//                             (kind y lifecycle, a SKU stock, s plain), same TTL rules as Y/A.
//   C n b:txid:id - k         backfill: set a load counter to n as of delivery position
//                             (b, txid, id) and snapshot k (taken under the drain lock; see
//                             activities/backfill).
//   R delta mark txid -       dead-letter retry of a load delta: applied once per marker (dead letter
//                             id and effect number: an order that moved FC or day has two), and not
//                             at all when a backfill recomputed the counter from a snapshot that saw
//                             the change's transaction.
// The deletion fence ({p}fence, store/fence.ts): a snapshot in which every deletion the store may
// have forgotten (swept tombstone, expired key, rebuild) is visible. A write into an ABSENT field
// is refused ("fenced", returned by op index, nothing written) when it could be an older value of
// a row deleted since: a B fill from a snapshot that does not cover the fence, or, in replay and
// retry modes, a change whose transaction the fence saw. The drain's own deliveries are never
// older than the fence (it moves only to snapshots the drain had applied), so it is not checked.
// Rebuild requests (U on a key with no lifecycle: its tombstone expired) are returned and kept in
// the set {p}rebuilds until the rebuild has re-emitted the SKU's rows (store/rebuild-requests.ts).
// Per-operation failures (a key of the wrong type, say) are returned, not raised, so one bad key
// cannot wedge the whole stream: the caller dead-letters that change.
const APPLY_LUA = `
local tombTtl, loadTtl, prefix = ARGV[1], ARGV[2], ARGV[4]
local replay, fencedMode = ARGV[3] == 'replay', ARGV[3] == 'replay' or ARGV[3] == 'retry'
local snapsKey = prefix .. 'snaps'
local applied, failed, rebuild, fenced = 0, {}, {}, {}
if ARGV[8] ~= '' then
  local s = redis.call('HMGET', KEYS[1], 'lb', 'lt', 'li')
  local behind = not s[1]
  if not behind then
    local sb, st, si = tonumber(s[1]), tonumber(s[2]), tonumber(s[3])
    local eb, et, ei = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
    behind = sb < eb or (sb == eb and (st < et or (st == et and si < ei)))
  end
  if behind then return redis.error_reply('FBBEHIND this store partition lost writes since its position was checked') end
end
local function visibleInDesc(d, t)
  local xmin, xmax, xip = string.match(d, '^(%d+):(%d+):(.*)$')
  t = tonumber(t)
  if t < tonumber(xmin) then return true end
  if t >= tonumber(xmax) then return false end
  for x in string.gmatch(xip, '%d+') do if tonumber(x) == t then return false end end
  return true
end
local function visibleIn(k, t)
  local d = redis.call('HGET', snapsKey, k)
  if not d then return false end
  return visibleInDesc(d, t)
end
local fence, fenceRead, covering = nil, false, {}
local function getFence()
  if not fenceRead then fence = redis.call('GET', prefix .. 'fence'); fenceRead = true end
  return fence
end
-- does snapshot tag k see every transaction the fence saw? (false when unknown: refuse)
local function coversFence(k)
  local f = getFence()
  if not f then return true end
  if covering[k] ~= nil then return covering[k] end
  local d = redis.call('HGET', snapsKey, k)
  local ok = false
  if d then
    local nmax, nxip = string.match(d, '^%d+:(%d+):(.*)$')
    local fmax, fxip = string.match(f, '^%d+:(%d+):(.*)$')
    ok = tonumber(nmax) >= tonumber(fmax)
    if ok then
      local inF = {}
      for x in string.gmatch(fxip, '%d+') do inF[x] = true end
      for x in string.gmatch(nxip, '%d+') do
        if tonumber(x) < tonumber(fmax) and not inF[x] then ok = false break end
      end
    end
  end
  covering[k] = ok
  return ok
end
-- a replayed or retried change (txid t) into an absent field, older than the fence
local function olderThanFence(cur, t)
  if cur or not fencedMode then return false end
  local f = getFence()
  return f ~= nil and f ~= false and visibleInDesc(f, t)
end
-- is the change (z = id, t = txid) newer than what field holds? also returns what it holds
local function newer(key, field, z, t)
  local cur = redis.call('HGET', key, field)
  if not cur then return true, cur end
  local bar = string.find(cur, '|', 1, true)
  if not bar then return true, cur end
  local v = string.sub(cur, bar + 1)
  if string.sub(v, 1, 1) == 's' then return not visibleIn(string.sub(v, 2), t), cur end
  if replay then return tonumber(v) <= tonumber(z), cur end
  return tonumber(v) < tonumber(z), cur
end
-- A load counter lives until the end of its UTC day plus the load TTL (features/definitions.ts,
-- loadWindowStart): an absolute time, so which days the store holds does not depend on when a
-- counter was last written. A delta to a day already past that is gone at once (EXPIREAT in the
-- past deletes the key): the store keeps exactly the days of the window.
local function expireLoad(key)
  local y, m, d = string.match(key, ':(%d+)(%d%d)(%d%d)$')
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  -- days from 1970-01-01 to the civil date (H. Hinnant's days_from_civil), plus one: the day's end
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  redis.call('EXPIREAT', key, string.format('%d', (era * 146097 + doe - 719468 + 1) * 86400 + loadTtl))
end
local function lifecycleTtl(key, code)
  if code == 'd' or code == 'x' then redis.call('EXPIRE', key, tombTtl) else redis.call('PERSIST', key) end
end
for i = 1, #KEYS - 1 do
  local key = KEYS[i + 1]
  local a = 10 + (i - 1) * 5
  local kind, x, y, z, w = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  local ok, err = pcall(function()
    if kind == 'S' then
      local isNewer, cur = newer(key, x, z, w)
      if not isNewer then return end
      if olderThanFence(cur, w) then fenced[#fenced + 1] = i return end
      redis.call('HSET', key, x, y .. '|' .. z)
    elseif kind == 'A' then
      local isNewer, cur = newer(key, x, z, w)
      if not isNewer then return end
      if olderThanFence(cur, w) then fenced[#fenced + 1] = i return end
      local existed = cur or redis.call('EXISTS', key) == 1
      redis.call('HSET', key, x, y .. '|' .. z)
      if not existed then redis.call('EXPIRE', key, tombTtl) end
    elseif kind == 'Y' or kind == 'U' then
      local isNewer, cur = newer(key, x, z, w)
      if not isNewer then return end
      if olderThanFence(cur, w) then fenced[#fenced + 1] = i return end
      redis.call('HSET', key, x, y .. '|' .. z)
      lifecycleTtl(key, y)
      if kind == 'U' and not cur and y ~= 'd' and y ~= 'x' then
        -- recorded with the lifecycle, in this same call: a crash after it cannot lose the request
        redis.call('SADD', prefix .. 'rebuilds', string.sub(key, #prefix + 3))
        rebuild[#rebuild + 1] = i
      end
    elseif kind == 'L' then
      local pos = redis.call('HMGET', key, 'b', 't', 'i', 'sk')
      local cb, ct, ci = tonumber(pos[1]), tonumber(pos[2]), tonumber(pos[3])
      local b, t, id = tonumber(w), tonumber(y), tonumber(z)
      if ct then
        -- a counter last written before the snapshot-delta upgrade has no batch: (txid, id) alone
        -- still orders it (every later batch's txids are above the old horizon)
        local notAfter = t < ct or (t == ct and id <= ci)
        if cb then notAfter = b < cb or (b == cb and notAfter) end
        if notAfter then return end
      end
      if pos[4] and visibleIn(pos[4], y) then return end
      redis.call('HINCRBY', key, 'n', x)
      redis.call('HSET', key, 'b', w, 't', y, 'i', z)
      expireLoad(key)
    elseif kind == 'M' then
      local pos = redis.call('HMGET', key, 'b', 't', 'i', 'sk')
      local cb, ct, ci = tonumber(pos[1]), tonumber(pos[2]), tonumber(pos[3])
      local b = tonumber(w)
      local sk = pos[4] and redis.call('HGET', snapsKey, pos[4])
      local sum, taken, lastT, lastI = 0, 0, nil, nil
      for dl, ts, is in string.gmatch(x, '(-?%d+):(%d+):(%d+)') do
        local t, id = tonumber(ts), tonumber(is)
        local skip = false
        if ct then
          local notAfter = t < ct or (t == ct and id <= ci)
          if cb then notAfter = b < cb or (b == cb and notAfter) end
          skip = notAfter
        end
        if not skip and sk and visibleInDesc(sk, ts) then skip = true end
        if not skip then
          sum, taken, lastT, lastI = sum + tonumber(dl), taken + 1, ts, is
          cb, ct, ci = b, t, id
        end
      end
      if taken == 0 then return end
      redis.call('HINCRBY', key, 'n', sum)
      redis.call('HSET', key, 'b', w, 't', lastT, 'i', lastI)
      expireLoad(key)
      applied = applied + taken - 1
    elseif kind == 'B' then
      if redis.call('HEXISTS', key, x) == 1 then return end
      if not coversFence(string.sub(z, 2)) then fenced[#fenced + 1] = i return end
      local existed = redis.call('EXISTS', key) == 1
      redis.call('HSET', key, x, y .. '|' .. z)
      if w == 'y' then lifecycleTtl(key, y) elseif w == 'a' and not existed then redis.call('EXPIRE', key, tombTtl) end
    elseif kind == 'C' then
      local b, t, i = string.match(y, '^(%d+):(%d+):(%d+)$')
      redis.call('HSET', key, 'n', x, 'b', b, 't', t, 'i', i, 'sk', w)
      expireLoad(key)
    elseif kind == 'R' then
      -- a backfill recomputed the counter from a snapshot that saw this change: it is counted
      local sk = redis.call('HGET', key, 'sk')
      if sk and visibleIn(sk, z) then return end
      if not redis.call('SET', prefix .. 'dlr:' .. y, '1', 'NX', 'EX', 604800) then return end
      redis.call('HINCRBY', key, 'n', x)
      expireLoad(key)
    else
      error('unknown operation ' .. tostring(kind))
    end
    applied = applied + 1
  end)
  if not ok then
    failed[#failed + 1] = i
    failed[#failed + 1] = type(err) == 'table' and (err.err or 'error') or tostring(err)
  end
end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'lb', ARGV[5], 'lt', ARGV[6], 'li', ARGV[7]) end
return { applied, failed, rebuild, fenced }
`;

export interface ApplyOptions {
  chunk: number;
  tombstoneTtlS: number;
  loadTtlS: number;
  /**
   * replay: re-write values whose version equals the stored one (fixed feature logic); replay and
   * retry: changes older than the deletion fence are not written into absent fields (fenced).
   */
  mode?: 'drain' | 'replay' | 'retry';
  /** The drain batch the changes belong to: load deltas are ordered by (batch, txid, id). */
  batch?: string;
  /** Recorded as the store's applied position by the last call, atomically with the changes. */
  position?: DeliveryPosition;
  /**
   * The position the drain checked every partition against before this chunk: a partition now
   * below it (it lost writes in between) refuses the call, atomically, before writing anything.
   */
  checked?: DeliveryPosition;
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
type WithApply = { fbApply(...args: (string | number)[]): unknown };

function defineApply(redis: StoreRedis): void {
  if (typeof (redis as unknown as Partial<WithApply>).fbApply !== 'function')
    redis.defineCommand('fbApply', { lua: APPLY_LUA });
}

type ChangeOp = VersionedOp | StockOp | LifecycleOp | LoadDeltaOp;

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

/** The hash field a versioned change writes. */
function fieldOf(op: VersionedOp | StockOp | LifecycleOp): string {
  return op.kind === 'versioned' ? op.field : op.kind === 'stock' ? op.fc : LIFECYCLE_FIELD;
}

/** A backfill fill of one feature value from snapshot version `snapshot` ("s<k>"), in every partition it lives in. */
export function toBackfillOps(keys: StoreKeys, u: FeatureUpdate, snapshot: string, source: number): FillOp[] {
  return toOps(keys, u, source).flatMap((op): FillOp[] => {
    switch (op.kind) {
      case 'loadDelta':
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
 */
export function foldOps(keys: StoreKeys, updates: { update: FeatureUpdate; source: number }[], batch = '0'): StoreOp[] {
  const latest = new Map<string, VersionedOp | StockOp | LifecycleOp>();
  const deltas: LoadDeltaOp[] = [];
  for (const { update, source } of updates) {
    for (const op of toOps(keys, update, source, batch)) {
      if (op.kind === 'loadDelta') {
        deltas.push(op);
        continue;
      }
      const id = `${op.key}\u0000${fieldOf(op)}`;
      const prev = latest.get(id);
      if (!prev || prev.version < op.version) latest.set(id, op);
    }
  }
  return [...latest.values(), ...deltas];
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
  defineApply(redis);
  const replies = await pipelineByNode(
    redis,
    calls,
    (call) => call.partition.pos,
    (pipeline, call) => {
      const args: (string | number)[] = [call.ops.length + 1, call.partition.pos];
      for (const op of call.ops) args.push(op.key);
      args.push(opts.tombstoneTtlS, opts.loadTtlS, opts.mode ?? 'drain', call.partition.prefix);
      args.push(...positionArgs(call.position), ...positionArgs(opts.checked ?? null));
      for (const op of call.ops) pushOpArgs(args, op);
      void (pipeline as unknown as WithApply).fbApply(...args);
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

export async function applyUpdates(
  redis: StoreRedis,
  keys: StoreKeys,
  updates: { update: FeatureUpdate; source: number }[],
  opts: ApplyOptions,
): Promise<ApplyResult> {
  return applyOps(redis, keys, foldOps(keys, updates, opts.batch), opts);
}
