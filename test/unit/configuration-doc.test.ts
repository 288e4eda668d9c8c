/**
 * docs/configuration.md documents exactly the variables config/index.ts reads, with their
 * defaults: a setting added, renamed or re-defaulted in one place and not the other fails here.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES, loadConfig } from '../../config';

const doc = fs.readFileSync(path.resolve(__dirname, '../../docs/configuration.md'), 'utf8');
/** `| \`NAME\` | default | meaning |` rows. */
/** Documented variables read outside config/index.ts (the tooling's, not the pipeline's), and where. */
const TOOLING: Record<string, string> = {
  TEMPORAL_CLI: 'scripts/lib/temporal-server.ts',
  // OpenTelemetry's standard variables: the exporter reads them itself
  OTEL_EXPORTER_OTLP_ENDPOINT: 'tracing/provider.ts',
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'tracing/provider.ts',
  OTEL_SERVICE_NAME: 'tracing/provider.ts',
};
const rows = new Map(
  [...doc.matchAll(/^\| `([A-Z][A-Z0-9_]+)` \| ([^|]*) \|/gm)].map((m) => [m[1], m[2].trim()] as const),
);

describe('docs/configuration.md', () => {
  it('has a row for every variable the configuration reads, and none for a variable it does not', () => {
    expect([...rows.keys()].filter((k) => !TOOLING[k]).sort()).toEqual([...CONFIG_VARIABLES].sort());
    for (const [name, file] of Object.entries(TOOLING))
      expect(fs.readFileSync(path.resolve(__dirname, '../..', file), 'utf8')).toContain(name);
  });

  it('states each default as the configuration has it', () => {
    const defaults = loadConfig({}) as unknown as Record<string, unknown>;
    const wrong: string[] = [];
    for (const [name, cell] of rows) {
      if (TOOLING[name]) continue;
      const value = defaults[name];
      if (value === undefined || value === '') {
        if (!/\(empty\)|\(none\)|unset/.test(cell)) wrong.push(`${name}: default is empty, doc says ${cell}`);
        continue;
      }
      // the first `…` of the cell is the default (a note may follow)
      const stated = /`([^`]*)`/.exec(cell)?.[1];
      if (stated !== String(value) && !(name === 'STORE_PARTITIONS' && stated === '1'))
        wrong.push(`${name}: default is ${String(value)}, doc says ${cell}`);
    }
    expect(wrong).toEqual([]);
  });
});
