import { describe, expect, it } from 'vitest';
import { ConfigurationError, loadConfig } from '../../config';

describe('loadConfig', () => {
  it('has working local defaults', () => {
    const c = loadConfig({});
    expect(c.DATABASE_URL).toMatch(/^postgres:\/\//);
    expect(c.DRAIN_INTERVAL_MS).toBe(60_000);
    expect(c.DRAIN_IDLE_WAIT_MS).toBeLessThanOrEqual(1_000);
  });

  it('names every bad variable and why', () => {
    let err: unknown;
    try {
      loadConfig({
        DATABASE_URL: 'mysql://x',
        DRAIN_BATCH_SIZE: 'lots',
        TEMPORAL_ADDRESS: 'nohost',
        API_PORT: '70000',
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigurationError);
    const message = (err as Error).message;
    for (const name of ['DATABASE_URL', 'DRAIN_BATCH_SIZE', 'TEMPORAL_ADDRESS', 'API_PORT'])
      expect(message).toContain(name);
  });
});
