/**
 * Landing days are pruned where they are: by the landing workflow on the batch task queue, in the
 * EXPORT_DIR of the worker polling it (here a child process polling only `batch`, as on a batch
 * machine of a split deployment, with an EXPORT_DIR of its own); compaction, on the pipeline
 * machine, touches no landing. And only a day past LANDING_RETENTION_D whose partition is
 * complete goes: one never exported, or only partially, is kept and reported (the run's result and
 * a warning in the batch worker's log naming the days and the export to run); a young day is kept.
 * (activities/export/landing-retention.ts)
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportDay, partitionDir } from '../../activities/export/export-day';
import { landingDir } from '../../activities/export/day-inputs';
import { PARTITION_MARKER } from '../../activities/export/partition-marker';
import { batchTaskQueue } from '../../config';
import { landingWorkflow } from '../../workflows';
import { activitiesFor } from '../support/activities';
import { eventually, pipelineClients, resetState, sharedTestServer, temporalClient, testClients } from '../support/env';
import { landByHand, type LandedChange } from '../support/hand-landing';
import { parseLogLines } from '../support/log-lines';
import { exited, spawnWorker } from '../support/worker-process';

const taskQueue = `landing-retention-${process.pid}`;
const c = testClients({ TEMPORAL_TASK_QUEUE: taskQueue });
const { address, bundlePath } = sharedTestServer();
/** The batch machine's EXPORT_DIR (where landing writes) and the pipeline machine's (none written). */
const batchDir = fs.mkdtempSync(path.join(os.tmpdir(), 'landing-batch-'));
const pipelineDir = fs.mkdtempSync(path.join(os.tmpdir(), 'landing-pipeline-'));

const daysAgo = (n: number) => new Date(Date.now() - n * 86_400_000).toISOString().slice(0, 10);
// past LANDING_RETENTION_D (14):
const lateLanded = '2020-01-02'; // complete, but a file landed after its export read the day: kept
// 2020-01-03: quiet (nothing landed)
const exported = '2020-01-04'; // complete partition, the next day's too: goes
const beforePartial = '2020-01-05'; // complete, but the next day's export (partial) still reads it: kept
const partial = '2020-01-06'; // exported while behind: kept
const unexported = '2020-01-07'; // never exported: kept
const unmarked = '2020-01-08'; // a partition without _partition.json (an older version's): kept
const empty = '2020-01-09'; // only a crashed write's temporary file, nothing landed: goes
// within it:
const young = daysAgo(1); // exported, complete: kept
const youngUnexported = daysAgo(3); // kept, and not reported

const changesOf = (date: string): LandedChange[] => {
  const t = Date.parse(`${date}T08:00:00Z`);
  return [
    [1, 'skus', 'I', 'S1', { sku_id: 'S1', title: 't', lifecycle: 'active' }, null, t],
    [2, 'fulfillment_centers', 'I', 'F1', { fc_id: 'F1', region: 'R1', daily_capacity: 10 }, null, t],
    [3, 'region_fc', 'I', 'R1|F1', { region: 'R1', fc_id: 'F1', rank: 1 }, null, t],
    [4, 'inventory', 'I', 'S1|F1', { sku_id: 'S1', fc_id: 'F1', on_hand: 5, reserved: 0 }, null, t],
  ];
};
const exportOf = (date: string, landedThroughMs?: number) =>
  exportDay(batchDir, date, { memoryLimit: '256MB', landedThroughMs });
const staleStaging = `date=${exported}.1.${Date.now() - 6 * 3_600_000}`; // a dead export's, 6 hours old

let worker: ChildProcess;
let stderr = '';
let temporal: Awaited<ReturnType<typeof temporalClient>>;
let result: Awaited<ReturnType<typeof landingWorkflow>>;

beforeAll(async () => {
  await resetState(c);
  // In this order, each export finds the earlier partitions it may continue from.
  for (const day of [young, lateLanded, exported, beforePartial, unmarked]) {
    await landByHand(batchDir, day, changesOf(day));
    await exportOf(day);
  }
  // a transaction that committed before midnight landed while the day's export ran, after it had
  // read the day (in no partition yet): written before the partition's marker, so its write time
  // alone does not tell it (the marker lists the files the export read)
  const late = Date.parse(`${lateLanded}T23:00:00Z`);
  await landByHand(
    batchDir,
    lateLanded,
    [[5, 'skus', 'U', 'S1', { sku_id: 'S1', title: 'u', lifecycle: 'active' }, null, late]],
    ['b2-2001_2-2001_1.parquet'],
  );
  const marker = path.join(partitionDir(batchDir, lateLanded), PARTITION_MARKER);
  const markedAt = fs.statSync(marker).mtime;
  fs.utimesSync(
    path.join(landingDir(batchDir, lateLanded), 'b2-2001_2-2001_1.parquet'),
    markedAt,
    new Date(markedAt.getTime() - 1000),
  );
  fs.rmSync(path.join(partitionDir(batchDir, unmarked), PARTITION_MARKER));
  await landByHand(batchDir, partial, changesOf(partial));
  await exportOf(partial, Date.parse(`${partial}T12:00:00Z`)); // the landing was behind
  await landByHand(batchDir, unexported, changesOf(unexported));
  await landByHand(batchDir, youngUnexported, changesOf(youngUnexported));
  fs.mkdirSync(landingDir(batchDir, empty), { recursive: true });
  fs.writeFileSync(path.join(landingDir(batchDir, empty), 'b1-1_1-1_1-ab.parquet.tmp-1-cd'), '');
  fs.mkdirSync(path.join(batchDir, '.staging', staleStaging, 'tmp'), { recursive: true });
  // the pipeline machine's EXPORT_DIR, as if it held the same files
  fs.cpSync(batchDir, pipelineDir, { recursive: true });

  worker = spawnWorker(c.config, address, bundlePath, {
    WORKER_TASK_QUEUES: 'batch',
    EXPORT_DIR: batchDir,
    BATCH_WORKER_NICE: '0',
  });
  worker.stderr?.on('data', (d) => (stderr += String(d)));
  worker.stdout?.on('data', (d) => console.log('STDOUT', String(d)));
  temporal = await temporalClient(address);
  const run = await temporal.client.workflow.start(landingWorkflow, {
    taskQueue: batchTaskQueue(c.config),
    workflowId: `landing-retention-${Date.now()}`,
    args: [{}],
  });
  result = await run.result();
  // RECORD_HISTORIES=<name>: test/histories/landing-<name>.json, replayed by replay.test.ts
  if (process.env.RECORD_HISTORIES)
    fs.writeFileSync(
      path.join(__dirname, '..', 'histories', `landing-${process.env.RECORD_HISTORIES}.json`),
      historyToJSON(await run.fetchHistory()),
    );
}, 120_000);
afterAll(async () => {
  worker?.kill('SIGTERM');
  if (worker) await exited(worker);
  await temporal?.close();
  await c.close();
  fs.rmSync(batchDir, { recursive: true, force: true });
  fs.rmSync(pipelineDir, { recursive: true, force: true });
});

const landed = (dir: string) =>
  fs
    .readdirSync(path.join(dir, 'landing'))
    .map((d) => d.replace(/^day=/, ''))
    .sort();

describe('landing retention', () => {
  it("a landing run on the batch task queue prunes the batch worker's EXPORT_DIR: a day past the retention with a complete partition, and what dead exports left", () => {
    expect(result).toMatchObject({ retention: { removed: [exported, empty], staging: [staleStaging] } });
    expect(fs.existsSync(landingDir(batchDir, exported))).toBe(false);
    expect(fs.existsSync(landingDir(batchDir, empty))).toBe(false);
    expect(fs.existsSync(path.join(batchDir, '.staging', staleStaging))).toBe(false);
    // the partition stays: only the landing files go
    expect(fs.readdirSync(partitionDir(batchDir, exported))).toContain('state.parquet');
  });

  it('keeps a young day, exported or not, without reporting it', () => {
    expect(landed(batchDir)).toEqual(expect.arrayContaining([youngUnexported, young]));
    const reported = result.retention?.kept.map((k) => k.day);
    expect(reported).not.toContain(young);
    expect(reported).not.toContain(youngUnexported);
  });

  it('keeps a day past the retention that was never exported, or only partially, and reports it in the result and the log', async () => {
    expect(landed(batchDir)).toEqual(
      [lateLanded, beforePartial, partial, unexported, unmarked, youngUnexported, young].sort(),
    );
    expect(result).toMatchObject({
      retention: {
        kept: [
          { day: lateLanded, partition: 'landed after its export' },
          { day: beforePartial, partition: 'next day not complete' },
          { day: partial, partition: 'partial' },
          { day: unexported, partition: 'none' },
          { day: unmarked, partition: 'no marker' },
        ],
      },
    });
    // (the line may reach this process after the run's result)
    const warning = await eventually(
      async () =>
        stderr.endsWith('\n') && parseLogLines(stderr).find((l) => String(l.msg).includes('past LANDING_RETENTION_D')),
      10_000,
      "the batch worker's warning about the days kept",
    );
    expect(warning).toMatchObject({ level: 'warn' });
    expect(warning.msg).toContain(
      `${lateLanded} (landed after its export), ${beforePartial} (next day not complete), ${partial} (partial), ${unexported} (not exported), ${unmarked} (no marker). Their landing files are the only copy of their changes. Export, oldest first: npm run ops -- export --date ${lateLanded}, then the next ones in turn (… --date ${unmarked}) (a quiet day in between, with nothing landed, is exported with --allow-empty); once complete they are pruned`,
    );
  });

  it('compaction, the pipeline side, prunes no landing and no staging in its own EXPORT_DIR', async () => {
    const acts = activitiesFor({ ...pipelineClients(c), config: { ...c.config, EXPORT_DIR: pipelineDir } });
    const r = await acts.finishCompaction({ outboxPruned: false });
    expect(r).not.toHaveProperty('landingDays');
    expect(landed(pipelineDir)).toEqual(
      [lateLanded, exported, beforePartial, partial, unexported, unmarked, empty, youngUnexported, young].sort(),
    );
    expect(fs.readdirSync(path.join(pipelineDir, '.staging'))).toEqual([staleStaging]);
  });
});
