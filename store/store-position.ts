/**
 * The store's own position ({p}pos): what the online store holds, written by Redis itself in the
 * same Lua calls as the changes, so it survives (or is lost) together with them: a restart from an
 * RDB or AOF file, or a failover to a replica, rolls back both, never one without the other.
 *
 *   claim:  cb  the batch claimed last; cf its cursor snapshot ("from"), ct its target snapshot,
 *               cat the target's time. A batch is claimed before its first row is applied, so a
 *               retry after a crash between the Redis apply and the cursor commit re-reads exactly
 *               the rows it may have applied (a newer target could put a transaction that was
 *               open at the first attempt, with a lower txid, ahead of load deltas already counted,
 *               and the counters' position guard would skip it).
 *   applied: lb lt li  the delivery position (batch, txid, id) of the last row applied, written by
 *               the last apply call of each chunk; lk what that chunk delivered (store/chunk-print.ts).
 *
 * Every drain call compares the applied position with PostgreSQL's (the cursor's `last`):
 *   equal, or ahead only inside the batch in progress, which the store claimed (a crash before the
 *           cursor commit): in sync, once the chunk's record (FIELD.appliedChunk) is found again in
 *           the outbox; else PostgreSQL lost that commit with rows the chunk applied: ahead
 *           (activities/drain/adopted-chunk.ts);
 *   behind: Redis lost writes the cursor had counted (restored from an older file, failed over to a
 *           lagging replica): the drain rewinds its cursor to the store's own position and
 *           re-delivers from there (reads stay stale: the watermark came back old with the data);
 *   ahead:  PostgreSQL lost commits the store had seen (restored from a backup, failed over to an
 *           asynchronous standby; transaction ids may be handed out again): the store is ahead
 *           of the cursor's last row outside the claimed batch, or has claimed a batch the cursor
 *           has not reached, or the claimed target is newer than any snapshot PostgreSQL now
 *           hands out. The store is rebuilt.
 * A store with no position (new, emptied) takes PostgreSQL's; the epoch check then backfills it.
 *
 * A store of several partitions (store/keys.ts) keeps one position per partition, each written in
 * the same calls as that partition's changes, so each survives or is lost with its own data (on a
 * cluster, partitions live on different nodes and fail over separately). The check runs in every
 * partition and combines them:
 *   any ahead: ahead (PostgreSQL lost commits);
 *   behind, and every partition holds the same claim: the whole store went back together (one
 *           Redis restored from a file), or nodes lost writes inside one batch: rewind to the
 *           lowest applied position, every partition past it lowered to it, which re-delivers
 *           the claimed batch with the same batch number and target, so every counter's position
 *           guard and every field's version skip exactly what each partition already holds;
 *   behind in some partitions only (a cluster node failed over to a lagging replica): those
 *           partitions are rebuilt, alone. A rewind would not do: later batches would be
 *           re-delivered under new numbers, which the partitions that kept them cannot tell apart
 *           from new changes (their load counters would count twice or skip).
 * A new batch is claimed only once every partition checked ok, with one target for all: an
 * earlier attempt's claim, if any partition holds one.
 */
import type { PartitionKeys, StoreKeys } from './keys';
import { onEachNode, StoreRedis } from './redis-client';
import { FIELD } from './names';
import { defineScripts, runScript, SCRIPTS } from './scripts';
import { appliedInPlace } from './chunk-print';

export interface DeliveryPosition {
  batch: string;
  txid: string;
  id: string;
}

export const NO_POSITION: DeliveryPosition = { batch: '0', txid: '0', id: '0' };

export interface StorePosition {
  claimed: { batch: string; from: string; target: string; at: number } | null;
  applied: DeliveryPosition | null;
  /** What the chunk that wrote `applied` delivered (FIELD.appliedChunk; absent: not known). */
  chunk?: string | null;
}

/**
 * The store is ahead of the cursor inside the batch it claimed: a chunk reached Redis and its
 * cursor commit did not (a crash), or PostgreSQL lost that commit and the rows with it (a failover
 * to an asynchronous standby). The drain tells the two apart (activities/drain/adopted-chunk.ts).
 */
export interface AheadInClaim {
  /** Each such partition's position and FIELD.appliedChunk ('' : none). */
  partitions: { applied: DeliveryPosition; chunk: string }[];
}

export type PositionCheck =
  | { status: 'ok'; target: { snap: string; at: number }; aheadInClaim?: AheadInClaim }
  | { status: 'behind' | 'ahead'; store: StorePosition }
  /** Some partitions lost writes the others kept: rebuild those partitions. */
  | { status: 'partitions-behind'; partitions: number[]; store: StorePosition };

function parseState(r: string[]): StorePosition {
  const [, cb, cf, ct, cat, lb, lt, li, lk] = r;
  return {
    claimed: cb && ct ? { batch: cb, from: cf, target: ct, at: Number(cat) } : null,
    applied: lb ? { batch: lb, txid: lt, id: li } : null,
    chunk: lk || null,
  };
}

/**
 * The partitions whose applied position is past the cursor's `last` (each checked ok: inside the
 * claim), or at it with a chunk applied in place (a TRUNCATE batch's last, before its emptying).
 */
function aheadInClaim(states: StorePosition[], last: DeliveryPosition): AheadInClaim | undefined {
  const ahead = states.filter(
    (s) =>
      s.applied &&
      (comparePositions(s.applied, last) > 0 ||
        (comparePositions(s.applied, last) === 0 && appliedInPlace(s.chunk, s.applied))),
  );
  if (!ahead.length) return undefined;
  return { partitions: ahead.map((s) => ({ applied: s.applied!, chunk: s.chunk ?? '' })) };
}

export function comparePositions(a: DeliveryPosition, b: DeliveryPosition): number {
  for (const k of ['batch', 'txid', 'id'] as const) {
    const d = BigInt(a[k]) - BigInt(b[k]);
    if (d !== 0n) return d < 0n ? -1 : 1;
  }
  return 0;
}

const sameClaim = (a: StorePosition['claimed'], b: StorePosition['claimed']) =>
  a === b || (!!a && !!b && a.batch === b.batch && a.from === b.from && a.target === b.target);

interface CheckInput {
  batch: string;
  from: string;
  /** The target of the cursor's batch in progress (null: none): a fence set by the check sees its rows. */
  to: string | null;
  proposed: { snap: string; at: number } | null;
  last: DeliveryPosition;
}

async function runChecks(
  redis: StoreRedis,
  partitions: readonly PartitionKeys[],
  input: CheckInput,
  claim: { snap: string; at: number } | null,
): Promise<{ status: string; store: StorePosition }[]> {
  defineScripts(redis);
  const replies = await onEachNode(
    redis,
    partitions,
    (p) => p.pos,
    (pipeline, p) =>
      void runScript(
        pipeline,
        SCRIPTS.checkPosition,
        2,
        p.pos,
        p.fence,
        input.batch,
        input.from,
        claim?.snap ?? '',
        String(claim?.at ?? ''),
        input.last.batch,
        input.last.txid,
        input.last.id,
        input.to ?? '',
      ),
  );
  return replies.map((reply) => ({ status: (reply as string[])[0], store: parseState(reply as string[]) }));
}

/**
 * Partitions whose rebuild began and never ended (store/rebuild.ts: a Redis back from a file
 * written while it ran), or that a TRUNCATE's emptying of a batch the cursor has passed never
 * reached (a file written before it: FIELD.truncatePending): rebuilt again like partitions that
 * lost writes, whatever the others hold.
 */
function rebuildsUnfinished(checked: { status: string; store: StorePosition }[]): PositionCheck | null {
  const partitions = checked.flatMap((c, i) => (c.status === 'rebuilding' ? [i] : []));
  if (!partitions.length) return null;
  return { status: 'partitions-behind', partitions, store: { claimed: null, applied: null } };
}

/** The lowest applied position of some partitions' states (with the claim of that partition). */
function lowest(states: StorePosition[]): StorePosition {
  return states.reduce((min, s) =>
    min.applied && s.applied && comparePositions(s.applied, min.applied) < 0 ? s : min,
  );
}

/**
 * Compares every partition's applied position with PostgreSQL's `last` and, for a new batch
 * (`proposed` given), claims it in every partition, or returns the target an earlier attempt of
 * the same batch claimed.
 */
export async function checkStorePosition(
  redis: StoreRedis,
  keys: StoreKeys,
  input: CheckInput,
): Promise<PositionCheck> {
  if (keys.partitions.length === 1 && input.proposed) return checkAndClaimOne(redis, keys.partitions[0], input);
  const checked = await runChecks(redis, keys.partitions, input, null);
  const unfinished = rebuildsUnfinished(checked);
  if (unfinished) return unfinished;
  const ahead = checked.find((c) => c.status === 'ahead');
  if (ahead) return { status: 'ahead', store: ahead.store };
  const behind = checked.flatMap((c, i) => (c.status === 'behind' ? [i] : []));
  if (behind.length > 0) {
    const store = lowest(behind.map((i) => checked[i].store));
    const together = checked.every((c) => sameClaim(c.store.claimed, checked[0].store.claimed));
    if (together) return { status: 'behind', store };
    return { status: 'partitions-behind', partitions: behind, store };
  }
  if (!input.proposed)
    return withAhead(
      { status: 'ok', target: { snap: '', at: 0 } },
      checked.map((c) => c.store),
      input.last,
    );
  // One target for the batch in every partition: an earlier attempt's, if any partition claimed it.
  const earlier = checked.map((c) => c.store.claimed).filter((c) => c?.batch === input.batch && c.target);
  if (earlier.some((c) => !sameClaim(c, earlier[0])))
    return { status: 'ahead', store: checked.find((c) => c.store.claimed?.batch === input.batch)!.store };
  const target = earlier[0] ? { snap: earlier[0].target, at: earlier[0].at } : input.proposed;
  if (earlier.length < checked.length) {
    const claimed = await runChecks(redis, keys.partitions, input, target);
    const moved = claimed.find((c) => c.status !== 'ok');
    // only another drain could move a partition between the two calls: the lease forbids it
    if (moved) throw new Error(`store position moved while batch ${input.batch} was being claimed (${moved.status})`);
  }
  return withAhead(
    { status: 'ok', target },
    checked.map((c) => c.store),
    input.last,
  );
}

const withAhead = (
  ok: Extract<PositionCheck, { status: 'ok' }>,
  states: StorePosition[],
  last: DeliveryPosition,
): PositionCheck => {
  const ahead = aheadInClaim(states, last);
  return ahead ? { ...ok, aheadInClaim: ahead } : ok;
};

/**
 * One partition (a single Redis): check and claim in one call, as nothing else needs to agree;
 * the claim is written only when the check is ok, and an earlier attempt's claim is kept.
 */
async function checkAndClaimOne(
  redis: StoreRedis,
  partition: PartitionKeys,
  input: CheckInput,
): Promise<PositionCheck> {
  const proposed = input.proposed!;
  const [c] = await runChecks(redis, [partition], input, proposed);
  const unfinished = rebuildsUnfinished([c]);
  if (unfinished) return unfinished;
  if (c.status === 'ahead' || c.status === 'behind') return { status: c.status, store: c.store };
  const earlier = c.store.claimed?.batch === input.batch ? c.store.claimed : null;
  return withAhead(
    { status: 'ok', target: earlier ? { snap: earlier.target, at: earlier.at } : proposed },
    [c.store],
    input.last,
  );
}

/** The store's position: the lowest applied position over its partitions, and that partition's claim. */
export async function readStorePosition(redis: StoreRedis, keys: StoreKeys): Promise<StorePosition> {
  return lowest(await readPartitionPositions(redis, keys));
}

/** Each partition's own position, in the order of keys.partitions. */
export async function readPartitionPositions(redis: StoreRedis, keys: StoreKeys): Promise<StorePosition[]> {
  const replies = await onEachNode(
    redis,
    keys.partitions,
    (p) => p.pos,
    (pipeline, p) =>
      void pipeline.hmget(
        p.pos,
        FIELD.claimedBatch,
        FIELD.claimedFrom,
        FIELD.claimedTarget,
        FIELD.claimedAt,
        FIELD.appliedBatch,
        FIELD.appliedTxid,
        FIELD.appliedId,
        FIELD.appliedChunk,
      ),
  );
  return replies.map((f) => parseState(['', ...(f as (string | null)[]).map((v) => v ?? '')]));
}

/**
 * After a rebuild: the partitions start again from PostgreSQL's position, with no claim, or with
 * the claim of the batch in progress kept (a rebuild in the middle of a batch: TRUNCATE).
 */
export async function resetStorePosition(
  redis: StoreRedis,
  partitions: readonly PartitionKeys[],
  last: DeliveryPosition,
  claim: StorePosition['claimed'] = null,
  chunk: string | null = null,
  /** The batch in progress as the partitions were emptied (FIELD.fencedBatch), if any. */
  fencedBatch: string | null = null,
): Promise<void> {
  const fields = [FIELD.appliedBatch, last.batch, FIELD.appliedTxid, last.txid, FIELD.appliedId, last.id];
  if (chunk) fields.push(FIELD.appliedChunk, chunk);
  if (fencedBatch) fields.push(FIELD.fencedBatch, fencedBatch);
  if (claim)
    fields.push(
      FIELD.claimedBatch,
      claim.batch,
      FIELD.claimedFrom,
      claim.from,
      FIELD.claimedTarget,
      claim.target,
      FIELD.claimedAt,
      String(claim.at),
    );
  for (const p of partitions) {
    await redis
      .multi()
      .del(p.pos)
      .hset(p.pos, ...fields)
      .exec();
  }
}

/**
 * A drain re-split's new position for a partition, as it is if the partition still holds `old`
 * (what its shard applied) or `planned` (an earlier attempt's write), unmarked; else marked for a
 * rebuild, its epoch gone (store/lua/split-position.lua). False: it lost writes, and its new shard
 * rebuilds it.
 */
export async function splitStorePosition(
  redis: StoreRedis,
  partition: PartitionKeys,
  old: DeliveryPosition,
  planned: DeliveryPosition,
): Promise<boolean> {
  defineScripts(redis);
  const args = [old.batch, old.txid, old.id, planned.batch, planned.txid, planned.id];
  return Number(await runScript(redis, SCRIPTS.splitPosition, 2, partition.pos, partition.epoch, ...args)) === 1;
}

/**
 * After a rewind to `to` (the lowest partition's position): every partition past it takes it
 * (store/lua/lower-position.lua). Returns the partitions it lowered (they kept writes past the
 * rewind's position) and the others (at or below it: those that went back).
 */
export async function lowerStorePosition(
  redis: StoreRedis,
  partitions: readonly PartitionKeys[],
  to: DeliveryPosition,
): Promise<{ lowered: PartitionKeys[]; wentBack: PartitionKeys[] }> {
  defineScripts(redis);
  const out = { lowered: [] as PartitionKeys[], wentBack: [] as PartitionKeys[] };
  for (const p of partitions) {
    const lowered = Number(await runScript(redis, SCRIPTS.lowerPosition, 1, p.pos, to.batch, to.txid, to.id));
    (lowered ? out.lowered : out.wentBack).push(p);
  }
  return out;
}

/**
 * Marks the partitions' positions with the batch whose TRUNCATE empties them after its last chunk
 * (FIELD.truncatePending), before a chunk of it moves their positions. The emptying's reset
 * removes it.
 */
export async function markTruncatePending(
  redis: StoreRedis,
  partitions: readonly PartitionKeys[],
  batch: string,
): Promise<void> {
  for (const p of partitions) await redis.hset(p.pos, FIELD.truncatePending, batch);
}

/** ARGV the apply script takes to record the applied position in the same call as the changes. */
export const positionArgs = (p: DeliveryPosition | null): string[] => (p ? [p.batch, p.txid, p.id] : ['', '', '']);
