/**
 * The store proves what it holds (store/store-position.ts): each batch compares the store's own
 * position with the cursor's, and a store found behind or ahead is re-aligned here.
 */
import type pg from 'pg';
import { parseSnapshot } from '../../db/pg-snapshot';
import { BATCH_START, readOutboxFloor, saveCursor, type ConsumerCursor } from '../../outbox';
import { rebuildStore } from '../../store/rebuild';
import {
  checkStorePosition,
  lowerStorePosition,
  readStorePosition,
  type AheadInClaim,
  type PositionCheck,
} from '../../store/store-position';
import type { DrainDeps, Target } from './types';
import { settleRedelivered } from '../dead-letters/redelivered';
import { releaseHeldBy } from '../dead-letters';
import { hold } from '../../store/held';

export type Divergence = Exclude<PositionCheck, { status: 'ok' }>;

/**
 * The store proves what it holds: its own applied position is compared with the cursor's, and a
 * new batch claims its target there first, so a retry after a crash re-reads exactly the rows an
 * earlier attempt may have applied (store/store-position.ts). Returns the batch's target, or how
 * the store diverged.
 */
export async function checkPosition(
  deps: DrainDeps,
  cursor: ConsumerCursor,
  now: { snap: string; at: number | null },
): Promise<{ kind: 'ok'; target: Target; aheadInClaim?: AheadInClaim } | { kind: 'diverged'; divergence: Divergence }> {
  const check = await checkStorePosition(deps.redis, deps.keys, {
    batch: cursor.batch,
    from: cursor.from,
    to: cursor.to,
    proposed: cursor.to === null ? { snap: now.snap, at: now.at ?? Date.now() } : null,
    last: cursor.last,
  });
  if (check.status !== 'ok') return { kind: 'diverged', divergence: check };
  // Transaction ids went back below the claimed target: PostgreSQL was restored; or a claim the
  // store kept (not this pass's proposal) names transactions as ended that run now: ids handed out
  // again after a failover that lost the claiming pass's commit. Read at that target, such a
  // transaction's rows are invisible, and the next batch, starting from it, takes them for
  // delivered: lost for good. No transaction below a snapshot's xmax that had ended by then can
  // run later in the same history, so this holds only after PostgreSQL lost history.
  if (cursor.to === null && historyWentBack(check.target.snap, now.snap)) {
    return { kind: 'diverged', divergence: { status: 'ahead', store: await readStorePosition(deps.redis, deps.keys) } };
  }
  return {
    kind: 'ok',
    target: cursor.to !== null ? { snap: cursor.to, at: cursor.toAt } : check.target,
    ...(check.aheadInClaim ? { aheadInClaim: check.aheadInClaim } : {}),
  };
}

/** Whether a claimed target cannot be of PostgreSQL's history as it is `now` (both snapshots as text). */
export function historyWentBack(claimed: string, now: string): boolean {
  const target = parseSnapshot(claimed);
  const current = parseSnapshot(now);
  if (target.xmax > current.xmax) return true;
  if (claimed === now) return false; // this pass's own proposal
  const runningThen = new Set(target.xip);
  return current.xip.some((x) => x < target.xmax && !runningThen.has(x));
}

/**
 * The store and the cursor disagree about what the store holds.
 *   behind: re-deliver from the store's own position, when the outbox still holds it (compaction
 *           has not pruned past it): the cursor goes back to the store's claimed batch, at the
 *           position the store reached in it. Reads stay stale meanwhile: the watermark came back
 *           old together with the data.
 *   ahead, or behind past what the outbox holds: rebuild (empty the store, backfill). Loud.
 */
export async function resolveDivergence(
  deps: DrainDeps,
  client: pg.PoolClient,
  consumer: string,
  cursor: ConsumerCursor,
  divergence: Divergence,
): Promise<{ cursor: ConsumerCursor; rebuilt: boolean }> {
  const { store } = divergence;
  if (divergence.status === 'partitions-behind') return rebuildLostPartitions(deps, cursor, divergence);
  const kind = divergence.status;
  const describe = `store applied ${JSON.stringify(store.applied)}, claimed ${JSON.stringify(store.claimed && { batch: store.claimed.batch })}; cursor last ${JSON.stringify(cursor.last)}, batch ${cursor.batch}`;
  if (kind === 'behind' && store.claimed && store.applied) {
    if (parseSnapshot(store.claimed.from).xmin >= (await readOutboxFloor(client))) {
      const sameBatch = store.applied.batch === store.claimed.batch;
      const rewound: ConsumerCursor = {
        batch: store.claimed.batch,
        from: store.claimed.from,
        fromAt: null,
        to: store.claimed.target,
        toAt: store.claimed.at,
        position: sameBatch ? { txid: store.applied.txid, id: store.applied.id } : BATCH_START,
        last: store.applied,
      };
      await saveCursor(client, consumer, rewound);
      // Partitions that kept writes past it (some nodes of a cluster behind) take it too: more than
      // a chunk ahead, they could not be checked against the outbox and would be rebuilt
      // (adopted-chunk.ts). Harmless: the versions and counters' positions skip what they hold.
      const { lowered, wentBack } = await lowerStorePosition(deps.redis, deps.keys.partitions, store.applied);
      // the letters of the changes delivered again no longer say what is owed (redelivered.ts).
      // What they held goes only in the partitions at or below the rewound position (those that
      // went back): a watermark speaks only for a partition holding its batch's end (gated-hset.lua),
      // so theirs is from before the claimed batch, whose changes all committed after it; the
      // re-delivery holds again what fails again. A partition that kept its writes (a cluster node
      // that did not fail over) may have a watermark past the change: released there, its reads
      // would answer fresh without a change still owed. There it is held anew, stamped now: the
      // settled letter no longer names it, and an old stamp would let the drain's settling of old
      // holds (settle-holds.ts) release it before the re-delivery has passed the change.
      const settled = await settleRedelivered(client, consumer, rewound);
      if (settled.length && wentBack.length)
        await releaseHeldBy({ ...deps, keys: { ...deps.keys, partitions: wentBack } }, settled, client);
      if (settled.length && lowered.length) await hold(deps.redis, deps.keys, settled, lowered, false, true);
      deps.log?.(
        'warn',
        `online store is BEHIND the drain cursor (Redis lost writes: restarted from an older file, or failed over); re-delivering from the store's own position`,
        { detail: describe },
      );
      deps.metrics?.divergence('behind');
      return { cursor: rewound, rebuilt: false };
    }
  }
  deps.log?.(
    'warn',
    `online store is ${kind === 'ahead' ? 'AHEAD of the source (PostgreSQL restored or failed over to a standby that was behind)' : 'BEHIND past what the outbox still holds'}: REBUILDING it (emptied, then backfilled; reads are stale until done)`,
    { detail: describe },
  );
  deps.metrics?.divergence(kind === 'ahead' ? 'ahead' : 'behind-rebuild');
  await rebuildStore(deps.redis, deps.keys, cursor, null, undefined, kind === 'ahead');
  return { cursor, rebuilt: true };
}

/**
 * Some partitions of the store lost writes that the others kept (a cluster node failed over to a
 * replica that had not received them): those partitions alone are emptied and refilled by
 * `backfill-auto`, from the cursor's position and snapshot, keeping the claim of the batch in
 * progress. Reads of their SKUs say stale until then; the other partitions keep serving fresh.
 * (A rewind would re-deliver later batches under new numbers, which the partitions that kept them
 * could not tell apart from new changes: store/store-position.ts.)
 */
async function rebuildLostPartitions(
  deps: DrainDeps,
  cursor: ConsumerCursor,
  divergence: Extract<Divergence, { status: 'partitions-behind' }>,
): Promise<{ cursor: ConsumerCursor; rebuilt: boolean }> {
  const lost = divergence.partitions.map((i) => deps.keys.partitions[i]);
  deps.log?.(
    'warn',
    `online store partitions ${lost.map((p) => p.index).join(', ')} of ${deps.keys.count} are BEHIND the others (a Redis node lost writes: failed over to a lagging replica, or restarted from an older file): REBUILDING those partitions (reads of their SKUs are stale until done)`,
    { lowest: divergence.store.applied, cursor: cursor.last },
  );
  deps.metrics?.divergence('behind-rebuild');
  const claim =
    cursor.to !== null ? { batch: cursor.batch, from: cursor.from, target: cursor.to, at: cursor.toAt ?? 0 } : null;
  await rebuildStore(deps.redis, deps.keys, cursor, claim, lost);
  return { cursor, rebuilt: true };
}
