/** A closed-loop HTTP load: `conns` keep-alive connections, each sending its next request when the last answer is in. */
import http from 'node:http';
import { percentiles } from './stats';

export async function httpLoad(port: number, conns: number, seconds: number, path: () => string) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: conns });
  const samples: number[] = [];
  const errors = new Map<string, number>();
  const fail = (why: string) => errors.set(why, (errors.get(why) ?? 0) + 1);
  const once = (p: string) =>
    new Promise<void>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: p, agent }, (res) => {
        if (res.statusCode !== 200) fail(`HTTP ${res.statusCode}`);
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', (err) => {
        fail(err.message);
        resolve();
      });
    });
  for (let i = 0; i < 200; i++) await once(path()); // warm-up
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: conns }, async () => {
      while (performance.now() < end) {
        const p = path();
        const s = performance.now();
        await once(p);
        samples.push(performance.now() - s);
      }
    }),
  );
  agent.destroy();
  return { ...percentiles(samples), rps: samples.length / ((performance.now() - t0) / 1000), errors };
}
