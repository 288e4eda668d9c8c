/**
 * A byte buffer written front to back that grows as needed (doubling): what capture's row images
 * (capture/json-bytes.ts) and its outbox COPY text (outbox/copy-text.ts) are written into.
 */
export class GrowingBuffer {
  protected buf: Buffer;
  protected len = 0;

  /** `bytes`: a first guess of the size. */
  constructor(bytes = 4096) {
    this.buf = Buffer.allocUnsafe(Math.max(1024, bytes));
  }

  get length(): number {
    return this.len;
  }

  /** Makes room for `n` more bytes. */
  protected room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(bigger, 0, 0, this.len);
    this.buf = bigger;
  }

  byte(b: number): void {
    this.room(1);
    this.buf[this.len++] = b;
  }

  /** What was written (a view of the buffer, valid until the next write). */
  view(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}
