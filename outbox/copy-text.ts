/**
 * Rows in COPY's text format (tab-separated, `\N` for NULL, backslash escapes), written straight
 * into one buffer: capture's outbox write sends a batch of tens of thousands of rows this way
 * without a string per line, a joined string of the batch, and its copy into bytes.
 */
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };
const NEEDS_ESCAPE = /[\\\t\n\r]/;
const TO_ESCAPE = /[\\\t\n\r]/g;

export class CopyText {
  private buf: Buffer;
  private len = 0;

  /** `bytes`: a first guess of the size (it grows as needed). */
  constructor(bytes: number) {
    this.buf = Buffer.allocUnsafe(Math.max(1024, bytes));
  }

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(bigger, 0, 0, this.len);
    this.buf = bigger;
  }

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
    this.room(1);
    this.buf[this.len++] = 0x09;
  }

  /** After a row's last field. */
  endRow(): void {
    this.room(1);
    this.buf[this.len++] = 0x0a;
  }

  /** What was written (a view: the writer is done with it). */
  bytes(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}
