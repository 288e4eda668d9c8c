/**
 * A replay holds compaction back (outbox/holds.ts): the rows it has yet to read stay however old
 * they are, what it has read may go, and its hold ends with it. A hold that lapsed while the
 * replay was stopped and let compaction past fails the replay, naming where to start again,
 * instead of replaying with a gap nobody would see.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { createActivities } from '../../activities';
import { holdsInForce, type Position } from '../../outbox';
import { replayWorkflow } from '../../workflows';
import { pipelineClients } from '../support/env';
import { usePipeline } from '../support/pipeline-fixture';

const owner = 'replay-hold-test';
const f = usePipeline('replay-hold', { lease: owner, worker: true });
const { c, acts } = f;
const START: Position = { txid: '0', id: '0' };
const SKUS = 60;

const outboxRows = async () =>
  (
    await c.pool.query<{ txid: string; id: string }>(
      `select txid::text, id::text from pipeline.outbox order by txid, id`,
    )
  ).rows;
const after = (rows: { txid: string; id: string }[], p: Position) =>
  rows.filter((r) => BigInt(r.txid) > BigInt(p.txid) || (r.txid === p.txid && BigInt(r.id) > BigInt(p.id)));

/** SKUs written one transaction each, drained, and made older than any retention. */
async function oldDrainedChanges(): Promise<void> {
  for (let i = 0; i < SKUS; i++)
    await c.pool.query(`insert into shop.skus (sku_id, title, lifecycle) values ($1, 't', 'active')`, [`H${i}`]);
  for (;;) if ((await acts.drainBatch({ owner })).outcome !== 'applied') break;
  await c.pool.query(`update pipeline.outbox set created_at = now() - interval '3 days'`);
}

function replayActivities(workflowId: string) {
  const env = new MockActivityEnvironment({
    workflowExecution: { workflowId, runId: 'run' },
  } as ConstructorParameters<typeof MockActivityEnvironment>[0]);
  const a = createActivities(pipelineClients(c));
  return {
    bounds: (from: Position) => env.run(a.replayBounds, { from }) as ReturnType<typeof a.replayBounds>,
    chunk: (input: Parameters<typeof a.replayChunk>[0]) =>
      env.run(a.replayChunk, input) as ReturnType<typeof a.replayChunk>,
  };
}

describe('a replay and compaction', () => {
  it('keeps the rows a replay has yet to read, lets go of what it read, and ends its hold with it', async () => {
    await oldDrainedChanges();
    const replay = replayActivities('replay-hold-a');
    const bounds = await replay.bounds(START);
    expect(bounds.rows).toBe(SKUS);
    const first = await replay.chunk({ ...bounds, limit: 20 });
    // every row is applied by the drain and 3 days old: only the replay's hold keeps any
    await acts.compactOutbox({ retentionMs: 1000 });
    const left = await outboxRows();
    expect(after(left, first.position)).toHaveLength(SKUS - 20);

    const second = await replay.chunk({ ...bounds, from: first.position, limit: 20 });
    await acts.compactOutbox({ retentionMs: 1000 });
    // the hold moved on to the second chunk's start: the rows before it went, none after it
    const now = await outboxRows();
    expect(now.length).toBeLessThan(left.length);
    expect(after(now, first.position)).toHaveLength(SKUS - 20);
    expect(after(now, second.position)).toHaveLength(SKUS - 40);

    let position = second.position;
    for (;;) {
      const r = await replay.chunk({ ...bounds, from: position, limit: 20 });
      position = r.position;
      if (r.done) break;
    }
    expect(await holdsInForce(c.pool)).toEqual([]);
    await acts.compactOutbox({ retentionMs: 1000 });
    expect(await outboxRows()).toEqual([]);
  });

  it('fails a replay whose hold lapsed and let compaction past it, naming where to start again', async () => {
    await oldDrainedChanges();
    const replay = replayActivities('replay-hold-b');
    const bounds = await replay.bounds(START);
    const first = await replay.chunk({ ...bounds, limit: 20 });
    // the replay stopped for longer than its hold (a worker down for over an hour)
    await c.pool.query(`update pipeline.outbox_holds set expires_at = now() - interval '1 second'`);
    await acts.compactOutbox({ retentionMs: 1000 });
    expect(await outboxRows()).toEqual([]);
    const resumed = replay.chunk({ ...bounds, from: first.position, limit: 20 });
    await expect(resumed).rejects.toMatchObject({ nonRetryable: true, type: 'OutboxReleasedError' });
    await expect(resumed).rejects.toThrow(
      `Start a new replay: npm run ops -- replay --from ${first.position.txid}:${first.position.id}`,
    );
  });

  // A replay begun by a worker from before holds (a rolling deploy) has no hold row; neither has a
  // finished one whose last step is retried. Either goes on from where compaction had not cut.
  it('a replay step with no hold row begins one where compaction had not cut, instead of failing', async () => {
    await oldDrainedChanges();
    const rows = await outboxRows();
    await acts.compactOutbox({ retentionMs: 1000 });
    expect(await outboxRows()).toEqual([]);
    await c.pool.query(`insert into shop.skus (sku_id, title, lifecycle) values ('H-late', 't', 'active')`);
    for (;;) if ((await acts.drainBatch({ owner })).outcome !== 'applied') break;
    const replay = replayActivities('replay-hold-d');
    const to = { txid: '9223372036854775807', id: '9223372036854775807' };
    const r = await replay.chunk({ from: { txid: rows[0]!.txid, id: '0' }, to, limit: 20 });
    expect(r).toMatchObject({ rows: 1, done: true });
    expect(await holdsInForce(c.pool)).toEqual([]);
  });

  it('starts where compaction had cut, and says so in its progress', async () => {
    await oldDrainedChanges();
    // compaction released the first changes (no hold then) before the replay starts
    const firstTen = (await outboxRows())[10]!;
    await c.pool.query(`update pipeline.outbox set created_at = now() where (txid, id) >= ($1::xid8, $2::bigint)`, [
      firstTen.txid,
      firstTen.id,
    ]);
    await acts.compactOutbox({ retentionMs: 3_600_000 });
    const floor = (await c.pool.query(`select below::text from pipeline.outbox_floor`)).rows[0].below as string;
    expect(BigInt(floor)).toBeGreaterThan(0n);
    const progress = await f.temporal.client.workflow.execute(replayWorkflow, {
      taskQueue: f.taskQueue,
      workflowId: `replay-hold-c-${Date.now()}`,
      args: [{ from: START, chunkRows: 7 }],
    });
    expect(progress.from).toEqual({ txid: (BigInt(floor) - 1n).toString(), id: '9223372036854775807' });
    expect(progress).toMatchObject({
      done: true,
      rows: (await outboxRows()).filter((r) => BigInt(r.txid) >= BigInt(floor)).length,
    });
    expect(await holdsInForce(c.pool)).toEqual([]);
  });
});
