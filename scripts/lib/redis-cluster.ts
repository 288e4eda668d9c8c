/**
 * A real local Redis Cluster, for tests and operators: one `redis-server` child process per node
 * (the machine's own binary; nothing is downloaded), created with `redis-cli --cluster create`.
 * Nodes can be killed, restarted and failed over; the cluster's state is always asked from the
 * live nodes themselves (CLUSTER INFO / CLUSTER NODES / INFO replication over plain connections).
 */
import { ChildProcess, execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';

const HOST = '127.0.0.1';
const SLOTS = 16384;
/** A cluster node also listens on its port + this (the cluster bus). */
const BUS_OFFSET = 10000;

export interface ClusterNodeProcess {
  host: string;
  port: number;
  /** current role as last observed (by masters(), replicas(), waitHealthy() or failOver()) */
  role: 'master' | 'replica' | 'unknown';
  /** the redis-server process is running (it was not killed and has not exited) */
  alive: boolean;
  pid: number | undefined;
}

export interface LocalRedisCluster {
  /** "127.0.0.1:port" of every node, masters first (as created) */
  seeds: string[];
  ports: number[];
  dir: string;
  /** every node's process, in the order of `ports` (a snapshot) */
  nodes(): ClusterNodeProcess[];
  /** SIGKILL (default) or SIGTERM one node's process */
  kill(port: number, signal?: NodeJS.Signals): Promise<void>;
  /** start a killed node again with the same config file (it rejoins, as a replica if it was failed over) */
  restart(port: number): Promise<void>;
  /** ports of the current masters / replicas, asked from the live cluster (CLUSTER NODES of a live node) */
  masters(): Promise<number[]>;
  replicas(): Promise<number[]>;
  /** resolves when every live node says cluster_state:ok, all 16384 slots are served by a live master, and (optionally) every master has a connected replica */
  waitHealthy(opts?: { timeoutMs?: number; replicasConnected?: boolean }): Promise<void>;
  /** kill a master with SIGKILL and wait until its replica is promoted and the cluster is ok; returns the promoted port */
  failOver(masterPort: number, opts?: { timeoutMs?: number }): Promise<number>;
  stop(): Promise<void>;
}

export interface StartLocalRedisClusterOptions {
  /** wiped first: node configs, data folders and logs go here */
  dir: string;
  /** at least 3 (redis-cli's minimum); default 3 */
  masters?: number;
  /** default 1 */
  replicasPerMaster?: number;
  /** exactly masters * (1 + replicasPerMaster) ports; default: free ports whose bus port (+10000) is free too */
  ports?: number[];
  /** cluster-node-timeout; default 1000 */
  nodeTimeoutMs?: number;
  /** how long creation may take until the cluster is healthy; default 30 s */
  startTimeoutMs?: number;
}

// ---------------------------------------------------------------------------------------------
// Ports

/** Can something listen on 127.0.0.1:port right now? */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, HOST, () => srv.close(() => resolve(true)));
  });
}

/** A port the OS calls free (as test/support/redis-process.ts does). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, HOST, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** A free port whose cluster bus port (port + 10000) is free and valid too, and not in `exclude`. */
export async function freeClusterPort(exclude: Iterable<number> = []): Promise<number> {
  const taken = new Set<number>();
  for (const p of exclude) {
    taken.add(p);
    taken.add(p + BUS_OFFSET);
  }
  for (let attempt = 0; attempt < 500; attempt++) {
    const port = await freePort();
    const bus = port + BUS_OFFSET;
    if (bus > 65535 || taken.has(port) || taken.has(bus)) continue;
    if (await portIsFree(bus)) return port;
  }
  throw new Error('found no free port whose cluster bus port (port + 10000) is free too');
}

async function checkPortsUsable(ports: number[]): Promise<void> {
  const seen = new Set<number>();
  for (const port of ports) {
    if (!Number.isInteger(port) || port < 1 || port + BUS_OFFSET > 65535)
      throw new Error(`port ${port} cannot be used: it and its cluster bus port ${port + BUS_OFFSET} must be 1..65535`);
    if (seen.has(port) || seen.has(port + BUS_OFFSET))
      throw new Error(`port ${port} is given twice, or is another node's cluster bus port`);
    seen.add(port);
    seen.add(port + BUS_OFFSET);
  }
  for (const port of ports) {
    if (!(await portIsFree(port))) throw new Error(`port ${HOST}:${port} is already in use`);
    if (!(await portIsFree(port + BUS_OFFSET)))
      throw new Error(`port ${HOST}:${port + BUS_OFFSET} (the cluster bus port of node ${port}) is already in use`);
  }
}

// ---------------------------------------------------------------------------------------------
// Talking to one node

/** One short-lived plain connection to one node: no retries, no offline queue, always closed. */
async function withNode<T>(port: number, fn: (r: Redis) => Promise<T>, timeoutMs = 1500): Promise<T> {
  const r = new Redis({
    host: HOST,
    port,
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  r.on('error', () => {}); // reported through the rejected command instead
  try {
    await r.connect();
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

function infoField(info: string, field: string): string | undefined {
  const m = new RegExp(`^${field}:(.*)$`, 'm').exec(info);
  return m?.[1].trim();
}

interface NodeEntry {
  id: string;
  port: number;
  flags: Set<string>;
  /** id of its master, for a replica */
  masterId: string | undefined;
  linkState: string;
  /** [from, to] inclusive */
  slots: [number, number][];
}

function parseClusterNodes(text: string): NodeEntry[] {
  const out: NodeEntry[] = [];
  for (const line of text.split('\n')) {
    const parts = line.trim().split(' ');
    if (parts.length < 8) continue;
    const [id, addr, flags, master, , , , linkState, ...slotSpecs] = parts;
    // ip:port@cport[,hostname]; the address is empty (":0@0") for a node in handshake or noaddr.
    const port = Number(/:(\d+)@/.exec(addr)?.[1] ?? 0);
    const slots: [number, number][] = [];
    for (const s of slotSpecs) {
      if (s.startsWith('[')) continue; // a slot being imported / migrated
      const [a, b] = s.split('-').map(Number);
      slots.push([a, b ?? a]);
    }
    out.push({
      id,
      port,
      flags: new Set(flags.split(',')),
      masterId: master === '-' ? undefined : master,
      linkState,
      slots,
    });
  }
  return out;
}

const isFailing = (n: NodeEntry) =>
  n.flags.has('fail') || n.flags.has('fail?') || n.flags.has('handshake') || n.flags.has('noaddr');
const isMaster = (n: NodeEntry) => n.flags.has('master');
const isReplica = (n: NodeEntry) => n.flags.has('slave') || n.flags.has('replica');
const isReplicaView = (v: { role: string | undefined }) => v.role === 'slave' || v.role === 'replica';

interface NodeView {
  port: number;
  clusterState: string | undefined;
  slotsAssigned: number;
  nodes: NodeEntry[];
  /** for a replica: master_link_status and the master's port */
  masterLinkStatus: string | undefined;
  masterPort: number | undefined;
  role: string | undefined;
}

async function viewOf(port: number): Promise<NodeView> {
  return withNode(port, async (r) => {
    const info = (await r.call('CLUSTER', 'INFO')) as string;
    const nodes = parseClusterNodes((await r.call('CLUSTER', 'NODES')) as string);
    const repl = await r.info('replication');
    const mp = infoField(repl, 'master_port');
    return {
      port,
      clusterState: infoField(info, 'cluster_state'),
      slotsAssigned: Number(infoField(info, 'cluster_slots_assigned') ?? 0),
      nodes,
      masterLinkStatus: infoField(repl, 'master_link_status'),
      masterPort: mp === undefined ? undefined : Number(mp),
      role: infoField(repl, 'role'),
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Processes

interface NodeState {
  port: number;
  child: ChildProcess | undefined;
  role: ClusterNodeProcess['role'];
}

/** Every redis-server started by this module and not yet known to have exited. */
const liveChildren = new Set<ChildProcess>();
let exitHandlerInstalled = false;

function installExitHandler(): void {
  if (exitHandlerInstalled) return;
  exitHandlerInstalled = true;
  // The children must not outlive this process (a test run that crashes, a CLI that exits).
  process.on('exit', () => {
    for (const child of liveChildren) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

const running = (child: ChildProcess | undefined): boolean =>
  !!child && child.exitCode === null && child.signalCode === null;

async function tail(file: string, lines = 15): Promise<string> {
  try {
    const text = await fs.readFile(file, 'utf8');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function exitOf(child: ChildProcess): Promise<void> {
  if (!running(child)) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

function execRedisCli(args: string[], timeoutMs: number): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    execFile('redis-cli', args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const output = `${stdout}${stderr}`.trim();
      if (err) {
        const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'redis-cli is not on PATH' : err.message;
        resolve({ ok: false, output: `${why}\n${output}` });
      } else resolve({ ok: true, output });
    });
  });
}

// ---------------------------------------------------------------------------------------------

/** A running local Redis Cluster: one redis-server child process per node (see the top of the file). */
class LocalRedisClusterProcesses implements LocalRedisCluster {
  private readonly byPort: Map<number, NodeState>;
  private stopped = false;
  /** Masters first, once the cluster is created. */
  private ordered: number[] = [];

  constructor(
    /** In the order given (or found free): the order redis-cli is handed them. */
    readonly created: number[],
    readonly dir: string,
    private readonly nodeTimeoutMs: number,
  ) {
    this.byPort = new Map(created.map((port) => [port, { port, child: undefined, role: 'unknown' }]));
  }

  get seeds(): string[] {
    return this.ordered.map((p) => `${HOST}:${p}`);
  }

  get ports(): number[] {
    return this.ordered;
  }

  nodes(): ClusterNodeProcess[] {
    return this.ordered.map((p) => {
      const n = this.nodeOf(p);
      return { host: HOST, port: p, role: n.role, alive: running(n.child), pid: n.child?.pid };
    });
  }

  /** Launches every node and joins them with `redis-cli --cluster create`; stops them all if that fails. */
  async create(replicasPerMaster: number, startTimeoutMs: number): Promise<void> {
    try {
      const launched = await Promise.allSettled(this.created.map((p) => this.launch(p)));
      const failed = launched.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
      const created = await execRedisCli(
        [
          '--cluster',
          'create',
          ...this.created.map((p) => `${HOST}:${p}`),
          '--cluster-replicas',
          String(replicasPerMaster),
          '--cluster-yes',
        ],
        startTimeoutMs,
      );
      if (!created.ok) throw new Error(`redis-cli --cluster create failed:\n${created.output}`);
      await this.waitHealthy({ timeoutMs: startTimeoutMs, replicasConnected: replicasPerMaster > 0 });
      // Masters first, in the order redis-cli made them so.
      const masterSet = new Set(await this.masters());
      this.ordered = [
        ...this.created.filter((p) => masterSet.has(p)),
        ...this.created.filter((p) => !masterSet.has(p)),
      ];
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private nodeOf(port: number): NodeState {
    const n = this.byPort.get(port);
    if (!n) throw new Error(`${HOST}:${port} is not a node of this cluster (nodes: ${this.created.join(', ')})`);
    return n;
  }

  private livePorts(): number[] {
    return this.created.filter((p) => running(this.byPort.get(p)?.child));
  }

  private logFile(port: number): string {
    return path.join(this.dir, String(port), 'redis.log');
  }

  private inPortOrder(set: Set<number>): number[] {
    return this.created.filter((p) => set.has(p));
  }

  private async launch(port: number): Promise<void> {
    const node = this.nodeOf(port);
    if (running(node.child)) throw new Error(`node ${HOST}:${port} is already running (pid ${node.child?.pid})`);
    await fs.mkdir(path.join(this.dir, String(port)), { recursive: true });
    // prettier-ignore
    const args = [
      '--port', String(port),
      '--bind', HOST,
      '--cluster-enabled', 'yes',
      '--cluster-config-file', path.join(this.dir, `nodes-${port}.conf`),
      '--cluster-node-timeout', String(this.nodeTimeoutMs),
      '--cluster-require-full-coverage', 'no',
      '--cluster-replica-validity-factor', '0',
      '--save', '',
      '--appendonly', 'no',
      // Redis 7.0 waits 5 s (repl-diskless-sync-delay) before a full sync to a replica, in case
      // more replicas ask: that would delay every (re)joining replica by 5 s here.
      '--repl-diskless-sync-delay', '0',
      '--dir', path.join(this.dir, String(port)),
      '--logfile', this.logFile(port),
      '--daemonize', 'no',
    ];
    const child = spawn('redis-server', args, { stdio: 'ignore' });
    let spawnError: Error | undefined;
    child.on('error', (err) => (spawnError = err));
    liveChildren.add(child);
    child.once('exit', () => liveChildren.delete(child));
    node.child = child;

    const deadline = Date.now() + 10_000;
    for (;;) {
      if (spawnError) {
        const why =
          (spawnError as NodeJS.ErrnoException).code === 'ENOENT' ? 'redis-server is not on PATH' : spawnError;
        throw new Error(`could not start redis-server on ${HOST}:${port}: ${why}`);
      }
      if (!running(child))
        throw new Error(
          `redis-server on ${HOST}:${port} exited at start (code ${child.exitCode}, signal ${child.signalCode}); ` +
            `last lines of ${this.logFile(port)}:\n${await tail(this.logFile(port))}`,
        );
      try {
        if ((await withNode(port, (r) => r.ping(), 500)) === 'PONG') return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(
          `redis-server on ${HOST}:${port} did not answer PING within 10 s; last lines of ${this.logFile(port)}:\n${await tail(this.logFile(port))}`,
        );
      }
      await sleep(50);
    }
  }

  async kill(port: number, signal: NodeJS.Signals = 'SIGKILL', graceMs = 15_000): Promise<void> {
    const node = this.nodeOf(port);
    const child = node.child;
    if (!child || !running(child)) return;
    const exited = exitOf(child);
    child.kill(signal);
    if (signal === 'SIGKILL') return exited;
    // A graceful shutdown may wait for replicas to catch up (shutdown-timeout): not forever.
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** The views of every live node (a node that does not answer is reported, not skipped). */
  private async liveViews(): Promise<{ views: NodeView[]; errors: string[] }> {
    const asked = this.livePorts();
    const results = await Promise.allSettled(asked.map((p) => viewOf(p)));
    const views: NodeView[] = [];
    const errors: string[] = [];
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') views.push(r.value);
      else if (running(this.byPort.get(asked[i])?.child))
        // (one that died meanwhile is simply not live)
        errors.push(`${HOST}:${asked[i]} does not answer: ${(r.reason as Error).message}`);
    });
    return { views, errors };
  }

  /** CLUSTER NODES of the first live node that answers. */
  private async clusterNodes(): Promise<NodeEntry[]> {
    const errors: string[] = [];
    for (const port of this.livePorts()) {
      try {
        const entries = await withNode(port, async (r) =>
          parseClusterNodes((await r.call('CLUSTER', 'NODES')) as string),
        );
        this.observeRoles(entries);
        return entries;
      } catch (err) {
        errors.push(`${port}: ${(err as Error).message}`);
      }
    }
    throw new Error(
      `no live node of the cluster answers CLUSTER NODES${errors.length ? ` (${errors.join('; ')})` : ''}`,
    );
  }

  private observeRoles(entries: NodeEntry[]): void {
    for (const e of entries) {
      const n = this.byPort.get(e.port);
      if (n) n.role = isMaster(e) ? 'master' : isReplica(e) ? 'replica' : 'unknown';
    }
  }

  async masters(): Promise<number[]> {
    const entries = await this.clusterNodes();
    return this.inPortOrder(new Set(entries.filter((e) => isMaster(e) && !isFailing(e)).map((e) => e.port)));
  }

  async replicas(): Promise<number[]> {
    const entries = await this.clusterNodes();
    return this.inPortOrder(new Set(entries.filter((e) => isReplica(e) && !isFailing(e)).map((e) => e.port)));
  }

  /** Why the cluster is not healthy yet, or undefined when it is. */
  private async unhealthyBecause(replicasConnected: boolean): Promise<string | undefined> {
    const live = new Set(this.livePorts());
    if (live.size === 0) return 'no node is running';
    const { views, errors } = await this.liveViews();
    if (errors.length) return errors.join('; ');
    const problems: string[] = [];
    // What each live node says of itself (its `myself` line) is the truth the others must agree on.
    const self = new Map<number, NodeEntry>();
    for (const v of views) {
      const me = v.nodes.find((e) => e.flags.has('myself'));
      if (me) self.set(v.port, me);
    }
    const portOfId = new Map([...self.values()].map((e) => [e.id, e.port]));
    const describe = (e: NodeEntry) =>
      isMaster(e)
        ? 'a master'
        : isReplica(e)
          ? `a replica of ${portOfId.get(e.masterId ?? '') ?? e.masterId}`
          : 'neither';
    for (const v of views) {
      for (const [port, me] of self) {
        if (port === v.port) continue;
        const seen = v.nodes.find((e) => e.id === me.id);
        if (!seen) problems.push(`${HOST}:${v.port} does not know node ${HOST}:${port}`);
        else if (isFailing(seen))
          problems.push(`${HOST}:${v.port} flags the running node ${HOST}:${port} ${[...seen.flags].join(',')}`);
        else if (describe(seen) !== describe(me))
          problems.push(
            `${HOST}:${v.port} sees ${HOST}:${port} as ${describe(seen)}, which says it is ${describe(me)}`,
          );
      }
    }
    let reference: string[] | undefined; // slot -> owner port, as the first node sees it
    let referencePort = 0;
    for (const v of views) {
      if (v.clusterState !== 'ok') problems.push(`${HOST}:${v.port} says cluster_state:${v.clusterState}`);
      if (v.slotsAssigned !== SLOTS)
        problems.push(`${HOST}:${v.port} says cluster_slots_assigned:${v.slotsAssigned} (of ${SLOTS})`);
      const owner: string[] = new Array<string>(SLOTS).fill('none');
      for (const e of v.nodes) {
        if (!isMaster(e)) continue;
        for (const [a, b] of e.slots) for (let s = a; s <= b; s++) owner[s] = String(e.port);
      }
      const badOwners = new Map<string, number>(); // owner -> number of slots it cannot serve
      for (const e of v.nodes) {
        if (!isMaster(e) || e.slots.length === 0) continue;
        const why = !live.has(e.port) ? 'not running' : isFailing(e) ? `flagged ${[...e.flags].join(',')}` : undefined;
        if (why)
          badOwners.set(
            `${HOST}:${e.port} (${why})`,
            e.slots.reduce((n, [a, b]) => n + b - a + 1, 0),
          );
      }
      const unowned = owner.filter((o) => o === 'none').length;
      if (unowned) problems.push(`${HOST}:${v.port} sees ${unowned} slots without a master`);
      for (const [who, n] of badOwners) problems.push(`${HOST}:${v.port} sees ${n} slots served by master ${who}`);
      if (!reference) {
        reference = owner;
        referencePort = v.port;
      } else {
        const differ = owner.reduce((n, o, s) => n + (o === reference![s] ? 0 : 1), 0);
        if (differ)
          problems.push(`${HOST}:${v.port} and ${HOST}:${referencePort} disagree on the owner of ${differ} slots`);
      }
      if (isReplicaView(v) && v.masterLinkStatus !== 'up' && replicasConnected)
        problems.push(
          `replica ${HOST}:${v.port} has master_link_status:${v.masterLinkStatus} (master ${v.masterPort})`,
        );
    }
    if (replicasConnected) {
      const first = views[0];
      const masterPorts = first.nodes.filter((e) => isMaster(e) && e.slots.length > 0).map((e) => e.port);
      for (const m of masterPorts) {
        const ok = views.some((v) => isReplicaView(v) && v.masterPort === m && v.masterLinkStatus === 'up');
        if (!ok) problems.push(`master ${HOST}:${m} has no live replica with master_link_status:up`);
      }
    }
    if (views[0]) this.observeRoles(views[0].nodes);
    return problems.length ? problems.join('; ') : undefined;
  }

  async waitHealthy(o: { timeoutMs?: number; replicasConnected?: boolean } = {}): Promise<void> {
    const timeoutMs = o.timeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    let last: string | undefined;
    for (;;) {
      if (this.stopped) throw new Error('the cluster was stopped');
      try {
        last = await this.unhealthyBecause(o.replicasConnected ?? false);
      } catch (err) {
        last = (err as Error).message;
      }
      if (last === undefined) return;
      if (Date.now() > deadline)
        throw new Error(`Redis Cluster in ${this.dir} not healthy after ${timeoutMs} ms: ${last}`);
      await sleep(100);
    }
  }

  async failOver(masterPort: number, o: { timeoutMs?: number } = {}): Promise<number> {
    const timeoutMs = o.timeoutMs ?? 30_000;
    const started = Date.now();
    const deadline = started + timeoutMs;
    this.nodeOf(masterPort);
    const before = await this.clusterNodes();
    const master = before.find((e) => e.port === masterPort);
    if (!master || !isMaster(master) || isFailing(master))
      throw new Error(
        `${HOST}:${masterPort} is not a live master (it is ${master ? [...master.flags].join(',') : 'unknown to the cluster'})`,
      );
    const candidates = before.filter(
      (e) => isReplica(e) && e.masterId === master.id && this.livePorts().includes(e.port),
    );
    if (candidates.length === 0)
      throw new Error(`master ${HOST}:${masterPort} has no live replica that could take over`);
    const candidatePorts = new Set(candidates.map((e) => e.port));

    await this.kill(masterPort, 'SIGKILL');

    let promoted: number | undefined;
    let last = '';
    while (promoted === undefined) {
      try {
        // A candidate that says role:master of itself; waitHealthy then checks that every node agrees.
        for (const port of candidatePorts) {
          if (!running(this.byPort.get(port)?.child)) continue;
          const v = await viewOf(port);
          if (v.role === 'master') {
            promoted = port;
            break;
          }
          last = `replica ${HOST}:${port} still role:${v.role}, master_link_status:${v.masterLinkStatus}`;
        }
      } catch (err) {
        last = (err as Error).message;
      }
      if (promoted !== undefined) break;
      if (Date.now() > deadline)
        throw new Error(
          `no replica of ${HOST}:${masterPort} (${[...candidatePorts].join(', ')}) was promoted within ${timeoutMs} ms: ${last}`,
        );
      await sleep(50);
    }
    await this.waitHealthy({ timeoutMs: Math.max(deadline - Date.now(), 1) });
    return promoted;
  }

  async restart(port: number): Promise<void> {
    if (this.stopped) throw new Error('the cluster was stopped');
    await this.launch(port);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.created.map((p) => this.kill(p, 'SIGTERM', 5_000)));
  }
}

export async function startLocalRedisCluster(opts: StartLocalRedisClusterOptions): Promise<LocalRedisCluster> {
  const masterCount = opts.masters ?? 3;
  const replicasPerMaster = opts.replicasPerMaster ?? 1;
  const nodeTimeoutMs = opts.nodeTimeoutMs ?? 1000;
  const startTimeoutMs = opts.startTimeoutMs ?? 30_000;
  if (!Number.isInteger(masterCount) || masterCount < 3)
    throw new Error(`a Redis Cluster needs at least 3 masters (asked for ${masterCount})`);
  if (!Number.isInteger(replicasPerMaster) || replicasPerMaster < 0)
    throw new Error(`replicasPerMaster must be a whole number of at least 0 (got ${replicasPerMaster})`);
  const total = masterCount * (1 + replicasPerMaster);

  let ports: number[];
  if (opts.ports) {
    if (opts.ports.length !== total)
      throw new Error(
        `${masterCount} masters with ${replicasPerMaster} replica(s) each need ${total} ports, got ${opts.ports.length}`,
      );
    ports = [...opts.ports];
    await checkPortsUsable(ports);
  } else {
    ports = [];
    for (let i = 0; i < total; i++) ports.push(await freeClusterPort(ports));
  }

  const dir = path.resolve(opts.dir);
  await fs.rm(dir, { recursive: true, force: true });
  await fs.mkdir(dir, { recursive: true });
  installExitHandler();

  const cluster = new LocalRedisClusterProcesses(ports, dir, nodeTimeoutMs);
  await cluster.create(replicasPerMaster, startTimeoutMs);
  return cluster;
}
