/**
 * Starting the re-split workflow (workflows/reshard.ts), or attaching to the one running: `ops
 * reshard` and `npm start` both come here. One runs at a time (a fixed workflow id); a request for
 * the count already being re-split to attaches to that run, one for another count is refused at
 * once with what was found. The target count rides in the run's memo, so telling them apart needs
 * no worker.
 */
import os from 'node:os';
import { Client, WorkflowExecutionAlreadyStartedError, type WorkflowHandle } from '@temporalio/client';
import type { Config } from '../../config';
import { readDrainLayout } from '../../outbox';
import type pg from 'pg';
import { RESHARD_WORKFLOW_ID, reshardWorkflow } from '../../workflows';

export class ReshardBusy extends Error {
  override name = 'ReshardBusy';
}

export async function startOrAttachReshard(
  client: Client,
  config: Config,
  pool: pg.Pool,
  shards: number,
  opts: { timeoutMs?: number; startedBy: string },
): Promise<{ handle: WorkflowHandle<typeof reshardWorkflow>; attached: boolean }> {
  try {
    const handle = await client.workflow.start(reshardWorkflow, {
      taskQueue: config.TEMPORAL_TASK_QUEUE,
      workflowId: RESHARD_WORKFLOW_ID,
      args: [{ shards, ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}) }],
      memo: { shards },
      workflowIdConflictPolicy: 'FAIL',
      staticSummary: `Re-split of the drain to ${shards} shard(s)`,
      staticDetails: `Started by ${os.userInfo().username}@${os.hostname()} (${opts.startedBy}) at ${new Date().toISOString()}.`,
    });
    return { handle, attached: false };
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    const handle = client.workflow.getHandle<typeof reshardWorkflow>(RESHARD_WORKFLOW_ID);
    const running = Number((await handle.describe()).memo?.shards);
    if (running === shards) return { handle, attached: true };
    const layout = await readDrainLayout(pool);
    throw new ReshardBusy(
      `a re-split of the drain to ${running} shard(s) is already running (workflow ${RESHARD_WORKFLOW_ID}); the install drains with ${layout.shards} shard(s)${layout.frozen ? `, frozen at ${layout.frozen.snap}` : ''}. Wait for it to finish (\`npm run ops -- reshard --shards ${running}\` follows it) or cancel it in the Web UI, then ask again`,
    );
  }
}
