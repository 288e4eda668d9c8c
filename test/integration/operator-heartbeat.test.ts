/**
 * An operator's dead-letter retry heartbeats while it works (activities/dead-letters:
 * OPERATOR_KEEP_ALIVE_MS, and its progress after each letter), inside operatorActivity's 2-minute
 * heartbeat timeout. Before, it never heartbeat: a retry of many letters that took longer than
 * two minutes was failed and started again, five times, while the first attempts still ran.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { createActivities } from '../../activities';
import { usePipeline } from '../support/pipeline-fixture';
import { pipelineClients } from '../support/env';

const owner = 'operator-heartbeat-test';
const { c, acts } = usePipeline('operator-heartbeat', { lease: owner });

describe("an operator's dead-letter retry", () => {
  it('heartbeats with its progress: letters asked for, done, and how they went', async () => {
    // three changes the drain cannot apply (a lifecycle the contract does not have)
    for (const sku of ['S1', 'S2', 'S3'])
      await c.pool.query(`insert into pipeline.outbox (tbl, op, key, image) values ('skus', 'U', $1, $2)`, [
        sku,
        JSON.stringify({ sku_id: sku, lifecycle: 'sideways' }),
      ]);
    for (;;) if ((await acts.drainBatch({ owner })).outcome === 'idle') break;
    const letters = Number(
      (await c.pool.query(`select count(*) from pipeline.dead_letters where retried_at is null`)).rows[0].count,
    );
    expect(letters).toBeGreaterThanOrEqual(3);

    const beats: unknown[] = [];
    const env = new MockActivityEnvironment();
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const { retryDeadLetters } = createActivities(pipelineClients(c));
    const r = await env.run(retryDeadLetters, {});
    expect(r).toMatchObject({ retried: 0, failed: letters });
    expect(beats).toContainEqual({ letters, done: 0, retried: 0, failed: 0 });
  });
});
