import { describe, expect, it } from 'vitest';
import { checkRunSettings, ConfigurationError, loadConfig } from '../../config';

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

  it('takes whole numbers in decimal digits only: a blank, hex, binary, exponent or fraction is an error', () => {
    expect(loadConfig({ API_PORT: ' 8081 ', DRAIN_ACTIVITY_BUDGET_MS: '0' })).toMatchObject({
      API_PORT: 8081,
      DRAIN_ACTIVITY_BUDGET_MS: 0,
    });
    for (const value of [' ', '0x1F90', '0b1', '1e3', '5000.0', '100ms', '+-1'])
      expect(() => loadConfig({ API_PORT: value }), JSON.stringify(value)).toThrow(/API_PORT=.*decimal digits/);
  });

  it('a Redis Cluster: seed nodes checked without echoing them, 16 partitions by default', () => {
    expect(loadConfig({}).STORE_PARTITIONS).toBe(1);
    const cluster = loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000,redis://u:secret@10.0.0.2:7001' });
    expect(cluster.STORE_PARTITIONS).toBe(16);
    expect(loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000', STORE_PARTITIONS: '64' }).STORE_PARTITIONS).toBe(64);
    expect(() => loadConfig({ STORE_PARTITIONS: '2000' })).toThrow(/STORE_PARTITIONS/);
    // one partition has no hash tag: on a cluster its calls would cross slots
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000', STORE_PARTITIONS: '1' })).toThrow(
      /at least 2 partitions/,
    );
    let err: Error | undefined;
    try {
      loadConfig({ REDIS_CLUSTER_NODES: 'redis://u:secret@10.0.0.2:7001/3,ftp://x' });
    } catch (e) {
      err = e as Error;
    }
    expect(err).toBeInstanceOf(ConfigurationError);
    expect(err!.message).toMatch(/REDIS_CLUSTER_NODES.*2 seed\(s\)/);
    expect(err!.message).not.toContain('secret');
  });
});

describe('OUTBOX_RETENTION_H', () => {
  // a retried dead letter is applied again to a Redis back from an older file only within 6 days
  it('is at most 144 hours, and says why', () => {
    expect(loadConfig({ OUTBOX_RETENTION_H: '144' }).OUTBOX_RETENTION_H).toBe(144);
    expect(() => loadConfig({ OUTBOX_RETENTION_H: '145' })).toThrow(
      /OUTBOX_RETENTION_H="145": must be at most 144: a Redis back from a file older than 6 days/,
    );
  });
});

describe('checkRunSettings', () => {
  // a discontinued SKU's key must not expire before compaction has moved the deletion fence past
  // its discontinuation: the TTL covers three compaction intervals (a fire may be skipped)
  it('refuses a tombstone TTL shorter than three compaction intervals, saying what to set', () => {
    expect(() => checkRunSettings(loadConfig({}))).not.toThrow(); // 7 days against 1 hour
    expect(() => checkRunSettings(loadConfig({ TOMBSTONE_TTL_S: '10800' }))).not.toThrow();
    expect(() => checkRunSettings(loadConfig({ TOMBSTONE_TTL_S: '10799' }))).toThrow(ConfigurationError);
    expect(() => checkRunSettings(loadConfig({ TOMBSTONE_TTL_S: '7200' }))).toThrow(
      /TOMBSTONE_TTL_S=7200: .*COMPACTION_INTERVAL_MS=3600000.*at least 10800 \(3 compaction intervals\) or run compaction more often/,
    );
    expect(() =>
      checkRunSettings(loadConfig({ TOMBSTONE_TTL_S: '180', COMPACTION_INTERVAL_MS: '60000' })),
    ).not.toThrow();
  });
});
