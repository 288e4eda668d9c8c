/** A read API on an ephemeral port for tests, and a tiny GET helper. */
import net from 'node:net';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { StoreRedis } from '../../store/redis-client';
import { createBadgeReader } from '../../serving/badge-reader';
import { createApiServer } from '../../serving/http-api';

export async function startTestApi(
  redis: StoreRedis,
  prefix: string,
  staleAfterMs = 10_000,
  now?: () => number,
  partitions = 1,
) {
  const reader = createBadgeReader({ redis, prefix, partitions, staleAfterMs, now });
  const server = createApiServer({ reader });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    base,
    reader,
    server,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export async function get(url: string, method = 'GET'): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url, { method });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON (metrics)
  }
  return { status: res.status, body, headers: res.headers };
}

/** Sends raw bytes (for requests fetch refuses to build) and returns the status line. */
export function rawRequest(port: number, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(payload));
    let data = '';
    socket.on('data', (d: Buffer) => (data += d.toString()));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
    socket.setTimeout(3000, () => {
      socket.destroy();
      resolve(data);
    });
  });
}
export { http };
