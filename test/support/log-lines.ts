/** The processes' logs as a test reads them: every line one JSON object with level, time and msg. */
import { expect } from 'vitest';

/** Each line of `out` parsed; a line that is not such an object fails the test, naming it. */
export function parseLogLines(out: string): Record<string, unknown>[] {
  const lines = out.split('\n').filter((l) => l !== '');
  return lines.map((line) => {
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(line);
    } catch {
      throw new Error(`not a JSON line: ${line}`);
    }
    expect(parsed, line).toMatchObject({
      level: expect.stringMatching(/^(trace|debug|info|warn|error|fatal)$/),
      time: expect.any(String),
      msg: expect.any(String),
    });
    expect(Number.isNaN(Date.parse(String(parsed.time))), line).toBe(false);
    return parsed;
  });
}

/** A process's stdout and stderr lines, in time order; a line on stderr below warn fails. */
export function processLogLines(stdout: string, stderr: string): Record<string, unknown>[] {
  const errors = parseLogLines(stderr);
  for (const e of errors) expect(['warn', 'error', 'fatal'], JSON.stringify(e)).toContain(e.level);
  const lines = [...parseLogLines(stdout), ...errors];
  expect(lines.length).toBeGreaterThan(0);
  return lines.sort((a, b) => Date.parse(String(a.time)) - Date.parse(String(b.time)));
}
