/**
 * A vitest reporter that writes one short line per failure (file, test, first line of the error)
 * to `$TEST_FAILURE_SUMMARY_DIR/<run>.txt` when a run ends, for scripts/test.sh to print after all
 * three runs. Why: `npm test` prints three long runs, the default one first, and a CI log is often
 * read from its tail; vitest's own failure list was then thousands of lines up. The default
 * reporter still prints every error in full.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Reporter, TestModule } from 'vitest/node';

type SerializedError = { message?: string; name?: string };

const firstLine = (e: SerializedError): string =>
  `${e.name && e.name !== 'Error' ? `${e.name}: ` : ''}${(e.message ?? String(e)).split('\n')[0]}`;

export default class FailureSummaryReporter implements Reporter {
  constructor(private readonly options: { run: string }) {}

  onTestRunEnd(
    modules: ReadonlyArray<TestModule>,
    unhandledErrors: ReadonlyArray<SerializedError>,
    reason: string,
  ): void {
    const dir = process.env.TEST_FAILURE_SUMMARY_DIR;
    if (!dir) return; // run on its own (`npx vitest run …`): vitest's own summary is enough
    const lines: string[] = [];
    for (const m of modules) {
      const file = m.relativeModuleId;
      for (const e of m.errors()) lines.push(`${file}: ${firstLine(e)}`);
      for (const s of m.children.allSuites())
        for (const e of s.errors()) lines.push(`${file} > ${s.fullName}: ${firstLine(e)}`);
      let listed = false;
      for (const t of m.children.allTests('failed')) {
        listed = true;
        const errors = t.result().errors ?? [];
        lines.push(`${file} > ${t.fullName}: ${errors[0] ? firstLine(errors[0]) : 'failed'}`);
      }
      if (!m.ok() && !listed && m.errors().length === 0) lines.push(`${file}: failed (see its output above)`);
    }
    for (const e of unhandledErrors) lines.push(`unhandled error: ${firstLine(e)}`);
    const head = `${this.options.run} run: ${reason}, ${modules.length} file(s)`;
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(
      path.join(dir, `${this.options.run}.txt`),
      [head, ...lines.map((l) => `  ${l}`)].join('\n') + '\n',
    );
  }
}
