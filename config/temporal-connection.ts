/**
 * How every process connects to Temporal: plain for the local dev server, TLS / mTLS / API key for
 * a real cluster, all from configuration (config/index.ts). Certificate files are read here, once,
 * with a clear error naming the setting when one is missing.
 */
import fs from 'node:fs';
import { Config, ConfigurationError } from './index';

export interface TemporalConnectionOptions {
  address: string;
  tls?: { serverRootCACertificate?: Buffer; clientCertPair?: { crt: Buffer; key: Buffer } } | true;
  apiKey?: string;
}

function readFile(setting: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new ConfigurationError(`${setting}: cannot read ${file}: ${(err as Error).message}`);
  }
}

export function temporalConnectionOptions(config: Config): TemporalConnectionOptions {
  const options: TemporalConnectionOptions = { address: config.TEMPORAL_ADDRESS };
  if (config.TEMPORAL_TLS_CERT && !config.TEMPORAL_TLS_KEY)
    throw new ConfigurationError('TEMPORAL_TLS_CERT is set without TEMPORAL_TLS_KEY (mTLS needs both)');
  if (config.TEMPORAL_TLS_KEY && !config.TEMPORAL_TLS_CERT)
    throw new ConfigurationError('TEMPORAL_TLS_KEY is set without TEMPORAL_TLS_CERT (mTLS needs both)');
  const wantsTls =
    config.TEMPORAL_TLS || !!config.TEMPORAL_API_KEY || !!config.TEMPORAL_TLS_CERT || !!config.TEMPORAL_TLS_CA;
  if (wantsTls) {
    const tls: Exclude<TemporalConnectionOptions['tls'], true | undefined> = {};
    if (config.TEMPORAL_TLS_CA) tls.serverRootCACertificate = readFile('TEMPORAL_TLS_CA', config.TEMPORAL_TLS_CA);
    if (config.TEMPORAL_TLS_CERT && config.TEMPORAL_TLS_KEY)
      tls.clientCertPair = {
        crt: readFile('TEMPORAL_TLS_CERT', config.TEMPORAL_TLS_CERT),
        key: readFile('TEMPORAL_TLS_KEY', config.TEMPORAL_TLS_KEY),
      };
    options.tls = Object.keys(tls).length ? tls : true;
  }
  if (config.TEMPORAL_API_KEY) options.apiKey = config.TEMPORAL_API_KEY;
  return options;
}
