/**
 * A connection attempt ended by an abort (`ops pause`, a worker's shutdown) settles at once, in
 * whatever phase it is: pg's own `end()` during a connect only queues a Terminate message, and a
 * server that has not answered yet (slow, or here never) left the connect pending for good, and
 * with it CaptureSession.open (db/cancellable.ts dropConnection).
 */
import net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectCancellable } from '../../db/cancellable';
import { ReplicationStream } from '../../capture/replication-stream';
import { TEST_DATABASE_URL } from '../support/env';

/** A server that accepts connections and never says a word: a source stuck before authentication. */
let silent: net.Server;
let silentUrl: string;
const sockets: net.Socket[] = [];
beforeAll(async () => {
  silent = net.createServer((s) => void sockets.push(s.on('error', () => undefined)));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  silentUrl = `postgres://fb:fb@127.0.0.1:${(silent.address() as net.AddressInfo).port}/none`;
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((resolve) => silent.close(resolve));
});

/** Settles within `ms`, or says it did not. */
const within = <T>(p: Promise<T>, ms: number) =>
  Promise.race([
    p.then(
      () => 'resolved' as const,
      (err: unknown) => err,
    ),
    new Promise((resolve) => setTimeout(() => resolve('still pending'), ms)),
  ]);

describe('a connection attempt ended by an abort', () => {
  it('rejects at once with the abort reason while the server has not answered', async () => {
    const client = new pg.Client({ connectionString: silentUrl });
    client.on('error', () => undefined);
    const ac = new AbortController();
    const connecting = connectCancellable(client, ac.signal);
    await new Promise((r) => setTimeout(r, 200)); // connected over TCP, waiting for the server
    ac.abort(new Error('paused'));
    expect(await within(connecting, 2_000)).toMatchObject({ message: 'paused' });
  });

  it('the replication stream start too', async () => {
    const ac = new AbortController();
    const starting = ReplicationStream.start({
      connectionString: silentUrl,
      slot: 's',
      publication: 'p',
      signal: ac.signal,
    });
    await new Promise((r) => setTimeout(r, 200));
    ac.abort(new Error('paused'));
    expect(await within(starting, 2_000)).toMatchObject({ message: 'paused' });
  });

  it('against a real server, whenever the abort comes while it connects', async () => {
    let aborted = 0;
    for (const delayMs of [0, 0, 0, 1, 1, 2, 3, 5]) {
      const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
      client.on('error', () => undefined);
      const ac = new AbortController();
      let connected = false;
      const connecting = connectCancellable(client, ac.signal).then(() => void (connected = true));
      if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
      const before = connected; // a connect done before the abort is the caller's to use
      ac.abort(new Error('paused'));
      const outcome = await within(connecting, 3_000);
      if (before) expect(outcome).toBe('resolved');
      else {
        aborted++;
        expect(outcome, `abort after ${delayMs} ms`).toMatchObject({ message: 'paused' });
      }
      await client.end().catch(() => undefined);
    }
    expect(aborted).toBeGreaterThan(0);
  });
});
