/**
 * Sweeps field tombstones ("x|version": a deleted inventory or region row) out of live store
 * keys once they can no longer fence anything, in partitions that hold every change the drain
 * cursor counts as applied.
 *
 * A tombstone with version v guards against an older change of the same row arriving after it.
 * Such a change committed before the delete was made (it held the row lock first), so by now it
 * is visible in the outbox; once no unapplied outbox row has an id below v, none can come and
 * the tombstone may go. Whole-SKU tombstones are not swept: their key expires by TTL.
 * Bounded: SCAN from a cursor kept in the store's meta hash, `maxKeys` keys per call. A swept
 * tombstone no longer stops a backfill chunk or a retried dead letter older than the delete: the
 * deletion fence does (store/fence.ts), moved here before the first HDEL.
 */
import { FIELD } from '../../store/names';
import { SCRIPTS } from '../../store/scripts';
import type { Redis } from 'ioredis';
import { masterNodes, StoreRedis } from '../../store/redis-client';

const nodeName = (node: Redis) => `${node.options.host}:${node.options.port}`;
import type pg from 'pg';
import { parseSnapshot } from '../../db/pg-snapshot';
import { cursorOfPartition, earliestSnapshot, shardCursors } from '../../outbox';
import { advanceFence } from '../../store/fence';
import { storedVersion, TOMBSTONE } from '../../store/field-codec';
import { LIFECYCLE_FIELD, PartitionKeys, StoreKeys } from '../../store/keys';

export async function sweepFieldTombstones(
  pool: pg.Pool,
  redis: StoreRedis,
  keys: StoreKeys,
  maxKeys: number,
  /** Called after each SCAN page: the activity heartbeats (a long sweep is not taken for dead). */
  onProgress: (visited: number, removed: number) => void = () => {},
): Promise<{ visited: number; removed: number; wrapped: boolean }> {
  // What every drain shard has applied, by PostgreSQL: the earliest of their cursors' snapshots;
  // and each shard's last delivered position, which a partition's own must have reached before
  // a tombstone of it goes (store/lua/delete-tombstone.lua: a Redis back from an older file).
  const cursors = await shardCursors(pool);
  const applied = earliestSnapshot(cursors.shards.map((s) => s.cursor.from));
  const lastOf = (p: PartitionKeys) => {
    const { last } = cursorOfPartition(cursors, p.index);
    return [last.batch, last.txid, last.id];
  };
  const from = parseSnapshot(applied);
  // Before anything is forgotten: every deletion this sweep may remove is visible in the drain
  // cursor's snapshot, which becomes the deletion fence (store/fence.ts). Also keeps the fence
  // recent for discontinued SKUs whose keys expire by TTL.
  await advanceFence(redis, keys, applied);
  // Rows the drain has not applied: not visible in its cursor's snapshot (in progress then, or
  // newer). Uncommitted ones count too: they may still commit. Two index scans, with the bounds
  // as parameters (an OR, or bounds from a subquery, would scan the whole outbox).
  const r = await pool.query(
    `select least((select min(o.id) from pipeline.outbox o where o.txid = any($1::xid8[])),
                  (select min(o.id) from pipeline.outbox o where o.txid >= $2::xid8),
                  9223372036854775807)::text as bound`,
    [from.xip.map(String), String(from.xmax)],
  );
  const bound = Number(r.rows[0].bound);
  // Where the last call stopped: which master (of a cluster, by address), which pattern, which
  // SCAN cursor. Kept in the first partition's meta; lost with it, the sweep starts over.
  const meta = keys.partitions[0].meta;
  const nodes = masterNodes(redis).sort((a, b) => nodeName(a).localeCompare(nodeName(b)));
  if (nodes.length === 0) throw new Error('no Redis master is known yet (cluster still connecting)');
  const [savedCursor, savedPattern, savedNode] = await redis.hmget(
    meta,
    FIELD.sweepCursor,
    FIELD.sweepPattern,
    FIELD.sweepNode,
  );
  let cursor = savedCursor ?? '0';
  let visited = 0;
  let removed = 0;
  let wrapped = false;
  const patterns = [keys.pattern('s'), keys.pattern('r')];
  let which = Number(savedPattern ?? 0) % patterns.length;
  let node = Number(savedNode ?? 0) % nodes.length;
  while (visited < maxKeys) {
    const redis = nodes[node];
    const [next, batch] = await redis.scan(cursor, 'MATCH', patterns[which], 'COUNT', 1000);
    removed += await sweepPage(redis, keys, batch, bound, lastOf);
    visited += batch.length;
    onProgress(visited, removed);
    cursor = next;
    if (cursor === '0') {
      which = (which + 1) % patterns.length;
      if (which === 0) node = (node + 1) % nodes.length;
      if (which === 0 && node === 0) {
        wrapped = true;
        break;
      }
    }
  }
  await redis.hset(meta, FIELD.sweepCursor, cursor, FIELD.sweepPattern, which, FIELD.sweepNode, node);
  return { visited, removed, wrapped };
}

/**
 * Deletes the tombstones below `bound` of one SCAN page of one node's keys; returns how many. HDEL
 * only if the field still holds exactly that tombstone and the partition is not behind its drain
 * cursor (a script: check and delete, store/lua/delete-tombstone.lua).
 */
async function sweepPage(
  node: Redis,
  keys: StoreKeys,
  page: string[],
  bound: number,
  lastOf: (p: PartitionKeys) => string[],
): Promise<number> {
  const read = node.pipeline();
  for (const k of page) read.hgetall(k);
  const hashes = ((await read.exec()) ?? []).map(([, v]) => v as Record<string, string>);
  const del = node.pipeline();
  page.forEach((key, i) => {
    const partition = partitionOf(keys, key);
    if (!partition) return;
    for (const [field, raw] of Object.entries(hashes[i] ?? {})) {
      if (field === LIFECYCLE_FIELD || !raw.startsWith(`${TOMBSTONE}|`)) continue;
      const v = storedVersion(raw);
      if (v !== null && v < bound)
        // EVAL on this node's own client (scripts are defined on the cluster client)
        del.eval(SCRIPTS.deleteTombstone.lua, 2, key, partition.pos, field, raw, ...lastOf(partition));
    }
  });
  let removed = 0;
  for (const [err, n] of (await del.exec()) ?? []) if (!err) removed += Number(n);
  return removed;
}

/** The partition of a scanned key, or none: a key of another partition count (a rebuild empties those). */
function partitionOf(keys: StoreKeys, key: string): PartitionKeys | undefined {
  try {
    return keys.ofKey(key);
  } catch {
    return undefined;
  }
}
