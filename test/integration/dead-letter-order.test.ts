/**
 * Dead letters are listed and retried in id order, by number: `order by id` on a query whose output
 * column id is id::text sorted them as text ("10" before "9"), so `dead-letters list --limit N`
 * showed the wrong N once ids passed a power of ten. And an id typed with leading zeros is the
 * same dead letter.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { discardDeadLetters } from '../../activities/dead-letters/discard';
import { listDeadLetters } from '../../activities/dead-letters/retry';
import { resetState, testClients } from '../support/env';

const c = testClients();
afterAll(() => c.close());

describe('dead letters in id order', () => {
  it('lists the lowest ids first, by number', async () => {
    await resetState(c);
    for (const id of [100, 9, 10])
      await c.pool.query(
        `insert into pipeline.dead_letters (id, consumer, outbox_txid, outbox_id, tbl, op, key, error)
         values ($1::bigint, 'redis-online-store', '1'::xid8, $1::bigint, 'skus', 'U', 'S-' || $1::text, 'malformed')`,
        [id],
      );
    const { total, rows } = await listDeadLetters(c.pool, { limit: 2 });
    expect(total).toBe(3);
    expect(rows.map((r) => r.id)).toEqual(['9', '10']);
    // ids as an operator may type them: 009 is dead letter 9, discarded, not "not waiting"
    const d = await discardDeadLetters(c.pool, { ids: ['009', '11'], by: 'test' });
    expect(d).toMatchObject({ discarded: ['9'], notWaiting: ['11'] });
    expect(d.settled.map((l) => l.key)).toEqual(['S-9']); // what it held is released (store/held.ts)
  });
});
