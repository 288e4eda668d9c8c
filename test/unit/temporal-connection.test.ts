/** Temporal TLS, mTLS and API key come from configuration (issue 12). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config';
import { temporalConnectionOptions } from '../../config/temporal-connection';

describe('temporal connection options', () => {
  it('plain for the local dev server; TLS when asked, or implied by an API key or certificates', () => {
    expect(temporalConnectionOptions(loadConfig({}))).toEqual({ address: '127.0.0.1:7233' });
    expect(
      temporalConnectionOptions(loadConfig({ TEMPORAL_TLS: 'true', TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233' })),
    ).toEqual({ address: 'ns.acct.tmprl.cloud:7233', tls: true });
    expect(temporalConnectionOptions(loadConfig({ TEMPORAL_API_KEY: 'k' }))).toEqual({
      address: '127.0.0.1:7233',
      tls: true,
      apiKey: 'k',
    });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fb-tls-'));
    fs.writeFileSync(path.join(dir, 'c.pem'), 'CERT');
    fs.writeFileSync(path.join(dir, 'k.pem'), 'KEY');
    const mtls = temporalConnectionOptions(
      loadConfig({ TEMPORAL_TLS_CERT: path.join(dir, 'c.pem'), TEMPORAL_TLS_KEY: path.join(dir, 'k.pem') }),
    );
    expect(mtls.tls).toEqual({ clientCertPair: { crt: Buffer.from('CERT'), key: Buffer.from('KEY') } });
    fs.rmSync(dir, { recursive: true });
  });

  it('clear errors: half an mTLS pair, an unreadable file', () => {
    expect(() => temporalConnectionOptions(loadConfig({ TEMPORAL_TLS_CERT: '/x.pem' }))).toThrow(
      /TEMPORAL_TLS_CERT is set without TEMPORAL_TLS_KEY/,
    );
    expect(() => temporalConnectionOptions(loadConfig({ TEMPORAL_TLS_CA: '/nonexistent/ca.pem' }))).toThrow(
      /TEMPORAL_TLS_CA: cannot read \/nonexistent\/ca.pem/,
    );
  });
});
