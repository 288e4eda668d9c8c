/**
 * Rows in COPY's text format (tab-separated, `\N` for NULL, backslash escapes), written straight
 * into one buffer: capture's outbox write sends a batch of tens of thousands of rows this way
 * without a string per line, a joined string of the batch, and its copy into bytes.
 */
import { GrowingBuffer } from '../capture/growing-buffer';

const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };
const NEEDS_ESCAPE = /[\\\t\n\r]/;
const TO_ESCAPE = /[\\\t\n\r]/g;

export class CopyText extends GrowingBuffer {
  /** A field as it is: text that holds nothing COPY escapes (names of our own, integers). */
  plain(s: string): void {
    this.room(s.length * 3);
    this.len += this.buf.write(s, this.len, 'utf8');
  }

  /** A field of any text, or NULL. */
  field(v: string | null): void {
    if (v === null) return this.plain('\\N');
    this.plain(NEEDS_ESCAPE.test(v) ? v.replace(TO_ESCAPE, (c) => ESCAPES[c]!) : v);
  }

  /** Between fields. */
  tab(): void {
    this.byte(0x09);
  }

  /** After a row's last field. */
  endRow(): void {
    this.byte(0x0a);
  }
}
