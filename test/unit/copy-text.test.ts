/**
 * COPY's text format as capture writes the outbox (outbox/copy-text.ts): every field reaches the
 * server as it was, whatever it holds (backslashes, tabs, line breaks, any Unicode), NULL as \N.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CopyText } from '../../outbox/copy-text';

/** COPY's own reading of a text-format line (PostgreSQL's CopyReadAttributesText, the escapes we write). */
function parseLine(line: string): (string | null)[] {
  return line
    .split('\t')
    .map((f) =>
      f === '\\N'
        ? null
        : f.replace(/\\(.)/g, (_, c: string) => ({ t: '\t', n: '\n', r: '\r', '\\': '\\' })[c] ?? `\\${c}`),
    );
}

describe('COPY text', () => {
  it('every row reads back as written, in order, from one buffer that grows as needed', () => {
    const field = fc.option(
      fc.oneof(
        fc.string({ unit: 'grapheme', maxLength: 30 }),
        fc.constantFrom('\\', '\\N', 'a\tb', 'line\nbreak\r\n', '{"t":"x\\"y\\\\n"}', 'é日本語🚀'),
      ),
      { nil: null },
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(field, field, fc.integer({ min: -1, max: 1023 })), { maxLength: 60 }), (rows) => {
        const text = new CopyText(1); // grows from its least size
        for (const [a, b, route] of rows) {
          text.plain('inventory');
          text.tab();
          text.field(a);
          text.tab();
          text.field(b);
          text.tab();
          text.plain(String(route));
          text.endRow();
        }
        const lines = text.view().toString('utf8').split('\n');
        expect(lines.pop()).toBe('');
        expect(lines.map(parseLine)).toEqual(rows.map(([a, b, route]) => ['inventory', a, b, String(route)]));
      }),
    );
  });
});
