/**
 * A PostgreSQL server of a test's own (initdb in a temporary folder, on a free port, trust
 * authentication on 127.0.0.1, wal_level = logical), so a test can restart, crash or fail over a
 * source database without touching the shared server the pipeline's own database lives on. Its
 * standby (pg_basebackup -R, streaming) stands in for a source's read replica.
 *
 * The binaries are the ones the installed PostgreSQL ships (`pg_config --bindir`): nothing is
 * downloaded. PostgreSQL refuses to run as root, so as root every command runs as `postgres`.
 */
import { execFile as execFileCb, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './redis-process';

const execFile = promisify(execFileCb);

function binDir(): string {
  try {
    return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
  } catch {
    // Debian's server packages without pg_config: the newest /usr/lib/postgresql/<version>/bin
    const root = '/usr/lib/postgresql';
    const versions = fs.existsSync(root) ? fs.readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
    if (!versions.length) throw new Error('PostgreSQL server binaries not found (pg_config, /usr/lib/postgresql)');
    return path.join(root, versions[0]!, 'bin');
  }
}

const asRoot = process.getuid?.() === 0;

/** Runs a PostgreSQL binary, as `postgres` when this process is root. */
async function run(bin: string, args: string[]): Promise<string> {
  const file = path.join(binDir(), bin);
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
  try {
    const { stdout } = await execFile(cmd, argv, { encoding: 'utf8', timeout: 120_000 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${bin} ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

/** A folder the server's user owns. */
function ownedDir(name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `fb-${name}-`));
  fs.chmodSync(dir, 0o700);
  if (asRoot) execFileSync('chown', ['postgres:postgres', dir]);
  return dir;
}

export class PrivatePostgres {
  private constructor(
    readonly name: string,
    readonly dir: string,
    readonly port: number,
  ) {}

  /** A new, empty, running server. */
  static async create(name: string): Promise<PrivatePostgres> {
    const dir = ownedDir(name);
    const data = path.join(dir, 'data');
    await run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
    // a free port may be taken before the server binds it (tests run side by side): another one
    for (let attempt = 1; ; attempt++) {
      const server = new PrivatePostgres(name, dir, await freePort());
      try {
        await server.start();
        return server;
      } catch (err) {
        if (attempt >= 3) throw err;
      }
    }
  }

  /**
   * A test run's own server (the cluster and logical runs, beside the default run on the shared
   * one): TEST_DATABASE_URL names `database` on it, for the global set-up, which creates and
   * migrates it, and for every test file's process, which inherits it.
   */
  static async forTestRun(name: string, database: string): Promise<PrivatePostgres> {
    const server = await PrivatePostgres.create(name);
    process.env.TEST_DATABASE_URL = server.url(database);
    return server;
  }

  /** A streaming standby of this server (a read replica), running on a port of its own. */
  async standby(): Promise<PrivatePostgres> {
    const dir = ownedDir(`${this.name}-standby`);
    const data = path.join(dir, 'data');
    await run('pg_basebackup', [
      '-h',
      '127.0.0.1',
      '-p',
      String(this.port),
      '-U',
      'postgres',
      '-D',
      data,
      '-R',
      '--no-sync',
      // an immediate checkpoint on the primary: the default spreads it over
      // checkpoint_completion_target of checkpoint_timeout, and the base backup waited ~100 s for it
      '--checkpoint=fast',
    ]);
    const replica = new PrivatePostgres(`${this.name}-standby`, dir, await freePort());
    await replica.start();
    return replica;
  }

  url(database: string, user = 'postgres'): string {
    return `postgres://${user}@127.0.0.1:${this.port}/${database}`;
  }

  async start(): Promise<void> {
    const options = [
      `-p ${this.port}`,
      `-k ${this.dir}`,
      '-c listen_addresses=127.0.0.1',
      '-c wal_level=logical',
      '-c max_wal_senders=10',
      '-c max_replication_slots=10',
      '-c hot_standby=on',
      '-c fsync=off', // a stop or a crash of the process, never of the machine: the OS keeps the WAL
      '-c shared_buffers=32MB',
      '-c autovacuum=off',
    ].join(' ');
    const data = path.join(this.dir, 'data');
    await run('pg_ctl', [
      '-D',
      data,
      '-l',
      path.join(this.dir, 'server.log'),
      '-w',
      '-t',
      '60',
      '-o',
      options,
      'start',
    ]);
  }

  /** `fast`: a clean shutdown; `immediate`: the server process dies as in a crash (recovery on start). */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await run('pg_ctl', ['-D', path.join(this.dir, 'data'), '-m', mode, '-w', '-t', '60', 'stop']);
  }

  /** Promotes a standby to a primary (a failover). */
  async promote(): Promise<void> {
    await run('pg_ctl', ['-D', path.join(this.dir, 'data'), '-w', '-t', '60', 'promote']);
  }

  /**
   * A copy of the data folder as it is now (a disk snapshot or a file-level backup, its slots
   * included). Taken with the server stopped cleanly; it is started again after.
   */
  async copyData(): Promise<string> {
    await this.stop('fast');
    const copy = path.join(this.dir, `data-copy-${Date.now()}`);
    await execFile('cp', ['-a', path.join(this.dir, 'data'), copy]); // -a: ownership too (as root)
    await this.start();
    return copy;
  }

  /** The server restored from a copy (copyData): whatever it did since is gone, as after a restore. */
  async restoreData(copy: string): Promise<void> {
    await this.stop('immediate');
    const data = path.join(this.dir, 'data');
    fs.rmSync(data, { recursive: true, force: true });
    await execFile('cp', ['-a', copy, data]);
    await this.start();
  }

  /** Stops the server (if running) and removes its folder. */
  async destroy(): Promise<void> {
    await this.stop('immediate').catch(() => {});
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
