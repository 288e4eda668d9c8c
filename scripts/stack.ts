/**
 * `npm run stack -- start|stop|status`: the local Temporal dev server (Web UI on
 * TEMPORAL_UI_PORT, SQLite under .data/temporal), plus reachability of PostgreSQL and Redis.
 */
import { Command } from 'commander';
import { runMain, runProgram } from './lib/cli-args';
import { temporalConnectionOptions } from '../config/temporal-connection';
import { createStoreRedis, describeStoreRedis, readyMasterNodes } from '../store/redis-client';
import { loadConfig } from '../config';
import { createPool } from '../db/pool';
import { localServerFiles, readPid, startDevServer, stopPid, temporalAnswers } from './lib/temporal-server';

export async function ensureTemporal(): Promise<{ address: string; started: boolean; pid: number | null }> {
  const config = loadConfig();
  if (await temporalAnswers(config.TEMPORAL_ADDRESS, config.TEMPORAL_NAMESPACE, temporalConnectionOptions(config)))
    return { address: config.TEMPORAL_ADDRESS, started: false, pid: null };
  const [host, port] = config.TEMPORAL_ADDRESS.split(':');
  if (!['127.0.0.1', 'localhost'].includes(host)) {
    throw new Error(
      `Temporal does not answer at ${config.TEMPORAL_ADDRESS}, and only a local dev server can be started here`,
    );
  }
  const files = localServerFiles();
  const server = await startDevServer({
    port: Number(port),
    uiPort: config.TEMPORAL_UI_PORT,
    namespace: config.TEMPORAL_NAMESPACE,
    ...files,
  });
  return { address: server.address, started: true, pid: server.pid };
}

async function status(): Promise<number> {
  const config = loadConfig();
  let bad = 0;
  const temporal = await temporalAnswers(
    config.TEMPORAL_ADDRESS,
    config.TEMPORAL_NAMESPACE,
    temporalConnectionOptions(config),
  );
  const pid = readPid(localServerFiles().pidFile);
  console.log(
    `temporal   ${temporal ? 'up' : 'DOWN'}  ${config.TEMPORAL_ADDRESS} namespace ${config.TEMPORAL_NAMESPACE}${pid ? ` (dev server pid ${pid}, UI http://localhost:${config.TEMPORAL_UI_PORT})` : ''}`,
  );
  if (!temporal) bad++;
  const pool = createPool(config.DATABASE_URL, 1);
  try {
    await pool.query('select 1');
    console.log(`postgres   up    ${new URL(config.DATABASE_URL).host}${new URL(config.DATABASE_URL).pathname}`);
  } catch (err) {
    console.log(`postgres   DOWN  ${(err as Error).message}`);
    bad++;
  } finally {
    await pool.end();
  }
  // the online store: one Redis, or every master of the Redis Cluster
  const redis = createStoreRedis(config, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await redis.connect();
    await Promise.all((await readyMasterNodes(redis)).map((node) => node.ping()));
    console.log(`redis      up    ${describeStoreRedis(config)}`);
  } catch (err) {
    console.log(`redis      DOWN  ${(err as Error).message}`);
    bad++;
  } finally {
    redis.disconnect();
  }
  return bad ? 1 : 0;
}

async function start(): Promise<number> {
  const t = await ensureTemporal();
  console.log(
    t.started
      ? `temporal dev server started (pid ${t.pid}) at ${t.address}; Web UI http://localhost:${loadConfig().TEMPORAL_UI_PORT}`
      : `temporal already answers at ${t.address}`,
  );
  return 0;
}

async function stop(): Promise<number> {
  const pid = readPid(localServerFiles().pidFile);
  if (!pid) {
    console.log('no dev server started by this project is running');
    return 0;
  }
  await stopPid(pid);
  console.log(`temporal dev server (pid ${pid}) stopped`);
  return 0;
}

async function main(argv = process.argv): Promise<number> {
  let code = 0;
  const program = new Command()
    .name('npm run stack --')
    .description('the local Temporal dev server, and whether PostgreSQL and Redis answer')
    .exitOverride();
  program
    .command('start')
    .description('start the Temporal dev server unless one answers')
    .action(async () => void (code = await start()));
  program
    .command('stop')
    .description('stop the dev server this project started')
    .action(async () => void (code = await stop()));
  program
    .command('status')
    .description('is each dependency up? (exit 1 if one is down)')
    .action(async () => void (code = await status()));
  return runProgram(program, argv, () => code);
}

if (require.main === module) runMain('stack', main);
