/**
 * Where `ops replay --since TIME` starts (activities/replay/replay-start.ts, positionSince): just
 * before the first retained change written at or after TIME, in (txid, id) order, the order a
 * replay re-applies in. Outbox rows are written here with chosen txids to pin two cases:
 *  - txids of different lengths: the first by number, not by text ("1000" sorts before "999" as
 *    text, and a replay from there would skip every change of txids 999 and below written since);
 *  - a long transaction: a change written after TIME by a transaction older than changes written
 *    before TIME still comes first (it is in the replay), whatever the created_at order says.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { positionSince } from '../../activities/replay/replay-start';
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

  it('finds nothing when no change was written since TIME', async () => {
    await resetState(c);
    await outboxRow(42, new Date(Date.now() - 7_200_000));
    const { position } = await positionSince(c.pool, new Date(Date.now() - 3_600_000));
    expect(position).toBeNull();
  });
});
