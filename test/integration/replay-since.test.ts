/**
 * Where `ops replay --since TIME` starts (activities/replay/replay-start.ts, positionSince): just
 * before the first retained change written at or after TIME, in (txid, id) order, the order a
 * replay re-applies in. Outbox rows are written here with chosen txids to pin two cases:
 *  - txids of different lengths: the first by number, not by text ("1000" sorts before "999" as
 *    text, and a replay from there would skip every change of txids 999 and below written since);
 *  - a long transaction: a change written after TIME by a transaction older than changes written
 *    before TIME still comes first (it is in the replay), whatever the created_at order says;
 *  - the read's lower bound, a drain snapshot's xmin: a transaction open at that snapshot is not
 *    below it, and only a snapshot applied well before TIME bounds the read.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { positionSince, SINCE_BOUND_MARGIN_MS } from '../../activities/replay/replay-start';
import { resetState, testClients } from '../support/env';

const c = testClients();
afterAll(() => c.close());

/** An outbox row of transaction `txid` written at `at`; its id. */
async function outboxRow(txid: number, at: Date): Promise<bigint> {
  const r = await c.pool.query<{ id: string }>(
    `insert into pipeline.outbox (txid, tbl, op, key, image, created_at)
     values ($1::text::xid8, 'orders', 'I', $2, '{}', $3) returning id::text`,
    [txid, `O-${txid}`, at],
  );
  return BigInt(r.rows[0]!.id);
}

/** A drain snapshot in the drain's log, applied (by the worker's clock) at `appliedAt`. */
async function drainSnapshot(snap: string, appliedAt: Date): Promise<void> {
  await c.pool.query(
    `insert into pipeline.drain_snapshots (shard, batch, snap, taken_at, applied_at)
     values (0, (select coalesce(max(batch), 0) + 1 from pipeline.drain_snapshots), $1::pg_snapshot, $2, $2)`,
    [snap, appliedAt],
  );
}

describe('replay --since', () => {
  it('starts at the first change since TIME by txid number, not by its text', async () => {
    await resetState(c);
    const since = new Date(Date.now() - 3_600_000);
    await outboxRow(5, new Date(since.getTime() - 60_000)); // before TIME: not replayed
    const first = await outboxRow(999, new Date());
    await outboxRow(1000, new Date());
    await outboxRow(12345, new Date());
    const { position } = await positionSince(c.pool, since);
    expect(position).toEqual({ txid: '999', id: (first - 1n).toString() });
  });

  it('starts at a long transaction that wrote after TIME, before newer transactions that wrote earlier', async () => {
    await resetState(c);
    const since = new Date(Date.now() - 3_600_000);
    await outboxRow(500, new Date(since.getTime() - 60_000)); // a newer transaction, before TIME
    const late = await outboxRow(70, new Date()); // an older one, still open at TIME, wrote after
    await outboxRow(600, new Date());
    const { position, oldestRetained } = await positionSince(c.pool, since);
    expect(position).toEqual({ txid: '70', id: (late - 1n).toString() });
    expect(oldestRetained).not.toBeNull();
  });

  it('reads from the xmin of a drain snapshot applied before TIME, which a transaction open then is not below', async () => {
    await resetState(c);
    const since = new Date(Date.now() - 3_600_000);
    // applied 10 minutes before TIME; transaction 70 was in progress then, the rest below 70 had ended
    await drainSnapshot('70:650:70', new Date(since.getTime() - 600_000));
    await outboxRow(20, new Date()); // (cannot happen: shows the read starts at the bound)
    const open = await outboxRow(70, new Date());
    await outboxRow(600, new Date());
    const { position } = await positionSince(c.pool, since);
    expect(position).toEqual({ txid: '70', id: (open - 1n).toString() });
  });

  it('bounds the read only by a snapshot applied well before TIME (the worker and database clocks may differ)', async () => {
    await resetState(c);
    const since = new Date(Date.now() - 3_600_000);
    await drainSnapshot('650:650:', new Date(since.getTime() - SINCE_BOUND_MARGIN_MS / 2));
    const early = await outboxRow(70, new Date());
    const { position } = await positionSince(c.pool, since);
    expect(position).toEqual({ txid: '70', id: (early - 1n).toString() });
  });

  it('finds nothing when no change was written since TIME', async () => {
    await resetState(c);
    await outboxRow(42, new Date(Date.now() - 7_200_000));
    const { position } = await positionSince(c.pool, new Date(Date.now() - 3_600_000));
    expect(position).toBeNull();
  });
});
