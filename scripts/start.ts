/**
 * `npm start`: the whole pipeline locally on the embedded defaults.
 *   1. validate configuration, check PostgreSQL and Redis
 *   2. create the database if needed and apply migrations
 *   3. start the Temporal dev server unless one answers already
 *   4. create or update the schedules (idempotent); when DRAIN_SHARDS differs from the shards in
 *      the database, start the re-split workflow, which the worker below runs
 *      (scripts/lib/drain-layout.ts)
 *   5. run the read API and the worker (and, with --simulate, the workload simulator) until Ctrl-C;
 *      landing and the export run in a second worker process (scripts/lib/batch-worker.ts)
 */
import { Client, Connection } from '@temporalio/client';
import { Command } from 'commander';
import pg from 'pg';
import { checkRunSettings, Config, loadConfig } from '../config';
import { redactText } from '../config/redact';
import { temporalConnectionOptions } from '../config/temporal-connection';
import { ensureDatabase, migrate } from '../db/migrate';
import { startApi } from '../serving/main';
import { createPool } from '../db/pool';
import { dependencyHealth } from '../worker/dependency-health';
import { runWorker } from '../worker/main';
import { temporalAnswers } from './lib/temporal-server';
import { ensureSchedules, triggerCaptures, triggerDrains } from './lib/schedules';
import { prepareCapture } from './lib/capture-mode';
import { syncDrainLayout } from './lib/drain-layout';
import { ensureTemporal } from './stack';
import { superviseBatchWorker } from './lib/batch-worker';
import { checkLocalPorts } from './lib/local-ports';
import { intBetween } from './lib/cli-args';
import { setTimeout as sleep } from 'node:timers/promises';
import { logger } from '../log/logger';

/** `npm start`'s own lines; the worker, the API and the simulator log under their own component. */
const log = logger('start');
const info = (m: string) => log.info(m);

interface StartOptions {
  simulate?: boolean;
  rate: number;
  skus: number;
  singleProcess?: boolean;
}

async function main(): Promise<void> {
  const opts = parseOptions();
  const config = loadConfig();
  checkRunSettings(config);
  checkLocalPorts(config, config.WORKER_TASK_QUEUES === 'all' && !opts.singleProcess);
  await migrateDatabase(config);
  await startTemporal(config);
  await syncSchedules(config);
  if (opts.simulate) await startSimulator(opts);
  const { api, healthPool } = await startReadApi(config);
  const stopping = onStopSignals();
  // Landing and the export run in a worker process of their own (WORKER_TASK_QUEUES), unless one
  // process was asked for or the operator chose this process's queues explicitly.
  const split = config.WORKER_TASK_QUEUES === 'all' && !opts.singleProcess;
  const batchWorker = split ? superviseBatchWorker(config.BATCH_WORKER_METRICS_PORT) : null;
  const workerEnv = split ? { ...process.env, WORKER_TASK_QUEUES: 'pipeline' } : process.env;
  try {
    await runWorkerUntilStopped(workerEnv, stopping);
  } finally {
    await batchWorker?.stop();
    await api.close();
    await healthPool.end().catch(() => undefined);
  }
}

function parseOptions(): StartOptions {
  const program = new Command()
    .name('npm start --')
    .description('run the fresh-badges pipeline locally')
    .option('--simulate', 'also run the workload simulator (a demo catalogue and order traffic)')
    .option(
      '--rate <changes/s>',
      'simulator target rate (0: as fast as it can)',
      intBetween(0, 1_000_000)('--rate'),
      200,
    )
    .option('--skus <n>', 'simulator catalogue size', intBetween(1, 9_999_999)('--skus'), 10_000)
    .option('--single-process', 'run landing and the export in the same worker process as the drain')
    .parse();
  const opts = program.opts<StartOptions>();
  // a simulator setting without the simulator would be silently ignored
  for (const name of ['rate', 'skus'])
    if (!opts.simulate && program.getOptionValueSource(name) === 'cli')
      program.error(`error: --${name} sets the simulator: add --simulate`);
  return opts;
}

/** Creates the database if needed and applies the pending migrations. */
async function migrateDatabase(config: Config): Promise<void> {
  await ensureDatabase(config.DATABASE_URL);
  const client = new pg.Client({ connectionString: config.DATABASE_URL });
  await client.connect();
  const m = await migrate(client);
  await client.end();
  log.info(`migrations: ${m.applied.length} applied, ${m.alreadyApplied.length} already in place`);
}

/** Starts the Temporal dev server unless one answers already. */
async function startTemporal(config: Config): Promise<void> {
  const temporal = await ensureTemporal();
  log.info(
    temporal.started ? `temporal dev server started at ${temporal.address}` : `temporal answers at ${temporal.address}`,
  );
  log.info(`Temporal Web UI: http://localhost:${config.TEMPORAL_UI_PORT}`);
}

/**
 * Creates or updates the schedules and triggers a drain now; starts the re-split when DRAIN_SHARDS
 * differs from the shards in the database.
 */
async function syncSchedules(config: Config): Promise<void> {
  const connection = await Connection.connect(temporalConnectionOptions(config));
  const temporalClient = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  let schedules: 'created' | 'updated' = 'updated';
  let triggered: string[] = [];
  // The capture mode's hand-over first: capture schedules must not start on triggers still in place.
  await prepareCapture(config, temporalClient, info);
  const { shards } = await syncDrainLayout(config, temporalClient, {
    log: info,
    // the schedules of the shards in force, before a re-split (if one starts) replaces them
    beforeReshard: async (current) => {
      schedules = await ensureSchedules(temporalClient, config, current);
      // Drain now rather than at the next interval boundary; the schedule's skip policy makes this
      // a no-op when a drain run is already going. An operator's pause is respected.
      triggered = await triggerDrains(temporalClient, current);
      await triggerCaptures(temporalClient, config);
    },
  });
  await connection.close();
  log.info(
    `drain schedule${shards > 1 ? `s (${shards} shards)` : ''} ${schedules} (every ${config.DRAIN_INTERVAL_MS / 1000}s)${triggered.length === 0 ? ', PAUSED by an operator' : ', triggered once now'}`,
  );
}

/** The workload simulator, in the background: its failure is reported, not fatal. */
async function startSimulator(opts: StartOptions): Promise<void> {
  const { runSimulatorCli } = await import('./simulate');
  void runSimulatorCli(['--seed-if-empty', '--skus', String(opts.skus), '--rate', String(opts.rate)]).catch((err) =>
    logger('simulator').error(err.message),
  );
}

/** The read API, with the pool its /healthz uses. */
async function startReadApi(
  config: Config,
): Promise<{ api: Awaited<ReturnType<typeof startApi>>; healthPool: pg.Pool }> {
  // /healthz of this process reports the pipeline's dependencies one by one (reads need only Redis).
  const healthPool = createPool(config.DATABASE_URL, 1);
  const api = await startApi(config, {
    dependencies: dependencyHealth({
      pool: healthPool,
      temporalCheck: async () => {
        if (
          !(await temporalAnswers(
            config.TEMPORAL_ADDRESS,
            config.TEMPORAL_NAMESPACE,
            temporalConnectionOptions(config),
          ))
        )
          throw new Error(`no answer at ${config.TEMPORAL_ADDRESS}`);
      },
    }),
  });
  log.info(`read API: http://${config.API_HOST}:${config.API_PORT}/v1/badges?region=R-00&skus=SKU-0000001`);
  return { api, healthPool };
}

/** Notes SIGINT/SIGTERM and arms the 25 s deadline; returns whether a stop was asked for. */
function onStopSignals(): () => boolean {
  // SIGINT/SIGTERM: the worker finishes its in-flight activities (grace time 10 s) and returns,
  // then the API finishes the requests in flight; whatever still hangs after 25 s is cut short.
  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      stopping = true;
      log.info(`${signal}: finishing the current batch and in-flight requests`);
      setTimeout(() => {
        log.error('graceful stop took longer than 25 s; exiting');
        process.exit(1);
      }, 25_000).unref();
    });
  }
  return () => stopping;
}

/** Runs the worker until a signal stops it, starting it again 2 s after it fails. */
async function runWorkerUntilStopped(workerEnv: NodeJS.ProcessEnv, stopping: () => boolean): Promise<void> {
  // The read API needs only Redis: a worker that fails (PostgreSQL or Temporal gone at the
  // wrong moment) is started again after a pause, while the API keeps answering.
  for (;;) {
    try {
      await runWorker(workerEnv);
      break; // stopped by a signal
    } catch (err) {
      if (stopping()) break;
      log.error(
        `worker stopped: ${redactText((err as Error).message)}; starting it again in 2 s (the read API keeps answering)`,
      );
      await sleep(2_000);
      if (stopping()) break;
    }
  }
}

main()
  .then(() => process.exit(0))
  .catch((err) => {
    log.error(redactText(err.message));
    process.exit(1);
  });
