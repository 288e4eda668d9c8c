import type { StoreRedis } from '../../store/redis-client';
import type pg from 'pg';
import { Config } from '../../config';
import { StoreKeys } from '../../store/keys';
import { retryDeadLetters } from './retry';
import { discardDeadLetters, type DiscardInput } from './discard';
import { applyOptions } from '../apply-options';
import { heldSubjects, hold, release, type HeldRow, type RetriedLetter } from '../../store/held';
import { RETRIED_WINDOW_MS } from './reapply';
import { WAITING_DEAD_LETTER } from './waiting';
import type { SourceRows } from '../../capture/source-rows';
import { inActivity } from '../in-activity';
import { keptAlive } from '../kept-alive';
import { heartbeatAgain, heartbeatWith } from '../heartbeat-details';
import { throttledHeartbeat } from '../heartbeat-throttle';

/**
 * How often an operator's retry or discard heartbeats while it runs, whatever it is doing: well
 * inside operatorActivity's 2-minute heartbeat timeout (workflows/activity-options.ts), so a
 * retry of many letters is not failed and started again while it works, and one on a worker that
 * died is retried within two minutes.
 */
export const OPERATOR_KEEP_ALIVE_MS = 10_000;

const keptAliveInActivity = <T>(work: () => Promise<T>): Promise<T> =>
  inActivity() ? keptAlive(work(), heartbeatAgain, OPERATOR_KEEP_ALIVE_MS) : work();

export function createDeadLetterActivities(deps: {
  pool: pg.Pool;
  redis: StoreRedis;
  keys: StoreKeys;
  config: Config;
  sourceRows: SourceRows;
}) {
  const opts = applyOptions(deps.config);
  return {
    retryDeadLetters: (input: { ids?: string[] }) =>
      keptAliveInActivity(async () => {
        const progress = inActivity() ? throttledHeartbeat(heartbeatWith) : () => undefined;
        const { settled, ...r } = await retryDeadLetters(
          deps.pool,
          deps.redis,
          deps.keys,
          opts,
          input,
          deps.sourceRows,
          (p) => progress(() => p),
        );
        return { ...r, released: await releaseHeldBy(deps, settled) };
      }),
    discardDeadLetters: (input: DiscardInput) =>
      keptAliveInActivity(async () => {
        const { settled, ...r } = await discardDeadLetters(deps.pool, input);
        return { ...r, released: await releaseHeldBy(deps, settled) };
      }),
  };
}

/**
 * What the settled letters held (store/held.ts) goes, unless a letter still waiting names it too:
 * reads of their SKUs, FCs and regions answer from the store again. Returns how many subjects went.
 */
export function releaseHeldBy(
  deps: { pool: pg.Pool; redis: StoreRedis; keys: StoreKeys },
  settled: readonly (HeldRow & { id?: string })[],
  /** Where the letters still waiting are read: a transaction that settled them, not yet committed. */
  db: pg.Pool | pg.ClientBase = deps.pool,
): Promise<number> {
  const ids = settled.map((l) => l.id).filter((id): id is string => id !== undefined);
  return release(
    deps.redis,
    deps.keys,
    () => waitingLetters(db),
    settled.flatMap(heldSubjects),
    () => retriedLetters(db, ids),
  );
}

/**
 * The letters retried within RETRIED_WINDOW_MS but `settledNow` (ids), still standing (not
 * discarded, not re-delivered by a rewind), but TRUNCATE letters (never applied again: a store that
 * lost one is found by its position checks): a hold older than a retry of its subject is kept
 * (store/held.ts, release).
 */
export async function retriedLetters(
  db: pg.Pool | pg.ClientBase,
  settledNow: readonly string[],
): Promise<RetriedLetter[]> {
  return (
    await db.query<RetriedLetter>(
      `select tbl, op, key, image, old_image, (extract(epoch from retried_at) * 1000)::float8 as "retriedAtMs"
         from pipeline.dead_letters
        where retried_at > now() - $1 * interval '1 millisecond' and discarded_at is null
          and op is distinct from 'T' and not (id = any($2::bigint[]))`,
      [RETRIED_WINDOW_MS, settledNow],
    )
  ).rows;
}

/**
 * Holds what every waiting letter names, where it is not held yet: letters written by a version
 * before holds, or whose hold a crash lost (the drain died after its commit and before the second
 * hold, with a release between). At worker start and with every compaction run. (A shard's letter
 * of an FC is held in every partition here, not its shard's alone: stale a little wider, never
 * fresh and wrong.)
 */
export async function holdWaiting(deps: { pool: pg.Pool; redis: StoreRedis; keys: StoreKeys }): Promise<number> {
  const waiting = await waitingLetters(deps.pool);
  if (waiting.length) await hold(deps.redis, deps.keys, waiting, deps.keys.partitions, true);
  return waiting.length;
}

/** Every letter still waiting, as what it holds is told from (store/held.ts). */
export async function waitingLetters(db: pg.Pool | pg.ClientBase): Promise<HeldRow[]> {
  return (
    await db.query<HeldRow>(
      `select tbl, op, key, image, old_image from pipeline.dead_letters where ${WAITING_DEAD_LETTER}`,
    )
  ).rows;
}
