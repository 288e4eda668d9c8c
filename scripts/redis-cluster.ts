/**
 * `npm run redis:cluster -- --dir .data/redis-cluster [--masters 3] [--replicas 1] [--base-port 7000]`:
 * a local Redis Cluster from the installed redis-server / redis-cli, in the foreground. Prints
 * `REDIS_CLUSTER_NODES=127.0.0.1:7000,...` once it is healthy, and stops the nodes on SIGINT/SIGTERM.
 * The folder is wiped at start: every run is a fresh cluster.
 */
import { Command, InvalidArgumentError } from 'commander';
import { runMain, runProgram } from './lib/cli-args';
import { startLocalRedisCluster } from './lib/redis-cluster';

const wholeNumber =
  (name: string, min: number, max = Number.MAX_SAFE_INTEGER) =>
  (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}`);
    return n;
  };

interface Options {
  dir: string;
  masters: number;
  replicas: number;
  basePort?: number;
}

async function run(o: Options): Promise<number> {
  const total = o.masters * (1 + o.replicas);
  let ports: number[] | undefined;
  if (o.basePort !== undefined) {
    ports = Array.from({ length: total }, (_, i) => o.basePort! + i);
    const last = ports[ports.length - 1];
    if (last + 10000 > 65535)
      throw new Error(
        `--base-port ${o.basePort} is too high for ${total} nodes: port ${last}'s cluster bus port ${last + 10000} would be over 65535`,
      );
  }
  const cluster = await startLocalRedisCluster({
    dir: o.dir,
    masters: o.masters,
    replicasPerMaster: o.replicas,
    ports,
  });
  console.log(`REDIS_CLUSTER_NODES=${cluster.seeds.join(',')}`);
  console.error(
    `redis cluster: ${o.masters} masters, ${o.replicas} replica(s) each, files and logs in ${cluster.dir}; Ctrl-C to stop`,
  );
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  console.error(`redis cluster: ${signal}, stopping the nodes`);
  await cluster.stop();
  return 0;
}

async function main(argv = process.argv): Promise<number> {
  let code = 0;
  const program = new Command()
    .name('npm run redis:cluster --')
    .description('a local Redis Cluster (installed redis-server and redis-cli) in the foreground, until Ctrl-C')
    .requiredOption('--dir <folder>', 'node configs, data and logs (wiped first)')
    .option('--masters <n>', 'number of masters (at least 3)', wholeNumber('--masters', 3, 1000), 3)
    .option('--replicas <n>', 'replicas per master', wholeNumber('--replicas', 0, 100), 1)
    .option(
      '--base-port <port>',
      'ports base .. base+n-1 (each also uses port+10000); default: free ports',
      wholeNumber('--base-port', 1, 55535),
    )
    .exitOverride()
    .action(async (o: Options) => void (code = await run(o)));
  return runProgram(program, argv, () => code);
}

if (require.main === module) runMain('redis:cluster', main);
