/**
 * Each dependency's health, checked on its own with a short timeout, for `/healthz`: PostgreSQL
 * (`select 1`), Redis (`PING`), Temporal (the gRPC health service). One slow or dead dependency
 * never hides the others' state, and nothing here throws.
 */
import type { NativeConnection } from '@temporalio/worker';
import type { StoreRedis } from '../store/redis-client';
import type pg from 'pg';
import { redactText } from '../config/redact';

export type DependencyState = { status: 'up' } | { status: 'down'; error: string };
export type DependencyHealth = Record<string, DependencyState>;

async function probe(check: () => Promise<unknown>, timeoutMs: number): Promise<DependencyState> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      check(),
      new Promise(
        (_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)),
      ),
    ]);
    return { status: 'up' };
  } catch (err) {
    return { status: 'down', error: redactText((err as Error)?.message ?? String(err)) };
  } finally {
    clearTimeout(timer);
  }
}

export function dependencyHealth(
  deps: { pool?: pg.Pool; redis?: StoreRedis; temporal?: NativeConnection; temporalCheck?: () => Promise<unknown> },
  timeoutMs = 1_000,
): () => Promise<DependencyHealth> {
  return async () => {
    const checks: [string, () => Promise<unknown>][] = [];
    if (deps.pool) checks.push(['postgres', () => deps.pool!.query('select 1')]);
    if (deps.redis) checks.push(['redis', () => deps.redis!.ping()]);
    if (deps.temporal) checks.push(['temporal', () => deps.temporal!.healthService.check({})]);
    else if (deps.temporalCheck) checks.push(['temporal', deps.temporalCheck]);
    const states = await Promise.all(checks.map(([, check]) => probe(check, timeoutMs)));
    return Object.fromEntries(checks.map(([name], i) => [name, states[i]]));
  };
}
