/**
 * A small TCP fault proxy for the fault tests (toxiproxy is not packaged here): clients connect to
 * the proxy's port, it forwards to the real service. Faults:
 *   cut()      every open connection is destroyed and new ones are refused (closed at once), like a
 *              server restart or a network partition with resets;
 *   blackhole()  connections stay open but nothing is forwarded (a partition without resets);
 *   latency(ms)  every chunk is delayed by ms in both directions, in order (as a slow network's: a
 *              chunk never overtakes one sent before it, also after heal());
 *   heal()     back to normal;
 *   retarget(t)  every open connection is destroyed and new ones go to t (a failover behind a
 *              stable address, as DNS or a virtual IP gives).
 *   strand()   every open connection stays open but silent, and new ones work (a host lost without
 *              a reset while the address moves on, or a path that dropped its connections' state).
 */
import net from 'node:net';

export interface FaultProxy {
  port: number;
  cut(): void;
  blackhole(): void;
  latency(ms: number): void;
  heal(): void;
  retarget(target: { host: string; port: number }): void;
  strand(): void;
  close(): Promise<void>;
}

export async function startFaultProxy(initial: { host: string; port: number }): Promise<FaultProxy> {
  let target = initial;
  let mode: 'ok' | 'cut' | 'blackhole' = 'ok';
  let delayMs = 0;
  const pairs = new Set<[net.Socket, net.Socket]>();
  const stranded = new WeakSet<net.Socket>();
  const pipe = (from: net.Socket, to: net.Socket) => {
    // chunks still held back by a latency: later ones queue behind them, whatever the latency now
    const held: { chunk: Buffer; dueAt: number }[] = [];
    const release = () => {
      while (held.length && held[0].dueAt <= Date.now()) {
        const { chunk } = held.shift()!;
        if (to.writable) to.write(chunk);
      }
      if (held.length) setTimeout(release, Math.max(0, held[0].dueAt - Date.now()));
    };
    from.on('data', (chunk: Buffer) => {
      if (mode === 'blackhole' || stranded.has(from)) return;
      if (delayMs === 0 && !held.length) {
        if (to.writable) to.write(chunk);
        return;
      }
      held.push({ chunk, dueAt: Date.now() + delayMs });
      if (held.length === 1) setTimeout(release, delayMs);
    });
  };
  const server = net.createServer((client) => {
    if (mode === 'cut') {
      client.destroy();
      return;
    }
    const upstream = net.connect(target.port, target.host);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    const end = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    pipe(client, upstream);
    pipe(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  const destroyAll = () => {
    for (const [a, b] of pairs) {
      a.destroy();
      b.destroy();
    }
    pairs.clear();
  };
  return {
    port,
    cut() {
      mode = 'cut';
      destroyAll();
    },
    blackhole() {
      mode = 'blackhole';
    },
    latency(ms) {
      delayMs = ms;
    },
    heal() {
      mode = 'ok';
      delayMs = 0;
    },
    retarget(to) {
      target = to;
      destroyAll();
    },
    strand() {
      for (const [a, b] of pairs) {
        stranded.add(a);
        stranded.add(b);
      }
    },
    async close() {
      destroyAll();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
