/** No secret in a log or an error message (issue 12). */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config';
import { redactText, redactUrl } from '../../config/redact';

describe('redaction', () => {
  it('hides passwords in URLs and in free text', () => {
    expect(redactUrl('postgres://app:s3cret@db.internal:5432/shop?sslmode=require')).toBe(
      'postgres://app:***@db.internal:5432/shop?sslmode=require',
    );
    expect(redactUrl('rediss://default:hunter2@cache:6380/0')).toBe('rediss://default:***@cache:6380/0');
    expect(redactUrl('redis://127.0.0.1:6379/0')).toBe('redis://127.0.0.1:6379/0');
    expect(redactUrl('postgres://h/db?password=pw')).not.toContain('pw');
    expect(redactUrl('not a url with secret')).not.toContain('secret');
    expect(redactText('connect to postgres://app:s3cret@db:5432/x failed')).toBe(
      'connect to postgres://app:***@db:5432/x failed',
    );
  });

  it('an invalid secret-bearing setting is named but its value is not echoed', () => {
    expect(() => loadConfig({ DATABASE_URL: 'mysql://u:topsecret@h/db' })).toThrow(/DATABASE_URL=\(value not shown\)/);
    try {
      loadConfig({ DATABASE_URL: 'mysql://u:topsecret@h/db' });
    } catch (err) {
      expect((err as Error).message).not.toContain('topsecret');
    }
    expect(() => loadConfig({ DRAIN_BATCH_SIZE: 'many' })).toThrow(/DRAIN_BATCH_SIZE="many"/);
  });
});
