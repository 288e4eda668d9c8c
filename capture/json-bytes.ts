/**
 * Column values → JSON, written byte by byte from the replication frame into one reused buffer.
 *
 * Why bytes: capture turns every column of every captured row into JSON. Doing it on strings made
 * a string per column (its text), another for its JSON form, another for `"name":value`, and the
 * join: most of capture's CPU and a large share of the worker's garbage collection. Here a value's
 * text is never a string: its bytes are copied (escaped where JSON needs it) into the image being
 * built, and the image becomes one string at the end.
 *
 * Each encoder gives what PostgreSQL's to_json gives for the type (the trigger capture's images):
 * numbers as they are (NaN and the infinities quoted), booleans, json as it is, timestamps as
 * 2026-12-03T16:00:00.5+00:00, everything else a JSON string escaped as JSON.stringify escapes it.
 */

/** How a column's text becomes JSON, by its type (row-image.ts picks one per column). */
export const JsonKind = { Text: 0, Number: 1, Bool: 2, Raw: 3, Timestamp: 4 } as const;
export type JsonKind = (typeof JsonKind)[keyof typeof JsonKind];

import { GrowingBuffer } from './growing-buffer';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const SPACE = 0x20;
const HEX = '0123456789abcdef';

/** The image being built, reused for image after image (one image at a time: single-threaded). */
export class JsonWriter extends GrowingBuffer {
  /** Empty again; a buffer grown past 1 MiB by one huge value is let go rather than kept for good. */
  reset(): void {
    this.len = 0;
    if (this.buf.length > 1 << 20) this.buf = Buffer.allocUnsafe(4096);
  }

  /** The bytes written so far, as a string. */
  text(): string {
    return this.buf.toString('utf8', 0, this.len);
  }

  /** src[start, end) as they are (a loop: values are short, shorter than a native copy's set-up). */
  bytes(src: Uint8Array, start: number, end: number): void {
    this.room(end - start);
    const buf = this.buf;
    let at = this.len;
    for (let i = start; i < end; i++) buf[at++] = src[i]!;
    this.len = at;
  }

  /** src[start, end) as a JSON string: quoted, with `"`, `\` and control characters escaped. */
  quoted(src: Uint8Array, start: number, end: number): void {
    this.byte(QUOTE);
    let from = start;
    for (let i = start; i < end; i++) {
      const c = src[i]!;
      if (c >= SPACE && c !== QUOTE && c !== BACKSLASH) continue;
      this.bytes(src, from, i);
      this.escape(c);
      from = i + 1;
    }
    this.bytes(src, from, end);
    this.byte(QUOTE);
  }

  private escape(c: number): void {
    this.byte(BACKSLASH);
    switch (c) {
      case QUOTE:
      case BACKSLASH:
        return this.byte(c);
      case 0x08:
        return this.byte(0x62); // b
      case 0x09:
        return this.byte(0x74); // t
      case 0x0a:
        return this.byte(0x6e); // n
      case 0x0c:
        return this.byte(0x66); // f
      case 0x0d:
        return this.byte(0x72); // r
      default:
        // \u00XX, lower-case hex, as JSON.stringify and to_json write it
        this.byte(0x75);
        this.byte(0x30);
        this.byte(0x30);
        this.byte(HEX.charCodeAt(c >> 4));
        this.byte(HEX.charCodeAt(c & 15));
    }
  }

  /** The text of a value of `kind` as its JSON. */
  value(kind: JsonKind, src: Uint8Array, start: number, end: number): void {
    switch (kind) {
      case JsonKind.Number:
        return isJsonNumberStart(src, start, end) ? this.bytes(src, start, end) : this.quoted(src, start, end);
      case JsonKind.Bool:
        return this.ascii(end - start === 1 && src[start] === 0x74 ? 'true' : 'false'); // 't'
      case JsonKind.Raw:
        return this.bytes(src, start, end);
      case JsonKind.Timestamp:
        return this.timestamp(src, start, end);
      default:
        return this.quoted(src, start, end);
    }
  }

  /** A string of ASCII characters (names of our own, literals). */
  ascii(s: string): void {
    this.room(s.length);
    for (let i = 0; i < s.length; i++) this.buf[this.len++] = s.charCodeAt(i);
  }

  /**
   * A timestamp's text output (DateStyle ISO, TimeZone UTC: 2026-12-03 16:00:00.5+00, maybe " BC")
   * as to_json writes it: "2026-12-03T16:00:00.5+00:00", the infinities as strings.
   */
  private timestamp(src: Uint8Array, start: number, end: number): void {
    if (equalsAscii(src, start, end, 'infinity') || equalsAscii(src, start, end, '-infinity'))
      return this.quoted(src, start, end);
    const bc = end - start >= 3 && equalsAscii(src, end - 3, end, ' BC');
    const bodyEnd = bc ? end - 3 : end;
    this.byte(QUOTE);
    const at = this.len;
    this.bytes(src, start, bodyEnd);
    const buf = this.buf;
    for (let i = at; i < this.len; i++)
      if (buf[i] === SPACE) {
        buf[i] = 0x54; // the first space: 'T'
        break;
      }
    // an offset of whole hours (+00) gets its minutes (+00:00)
    const n = this.len;
    const sign = n - at >= 3 ? buf[n - 3] : 0;
    if ((sign === 0x2b || sign === 0x2d) && isDigit(buf[n - 2]!) && isDigit(buf[n - 1]!)) this.ascii(':00');
    if (bc) this.ascii(' BC');
    this.byte(QUOTE);
  }
}

const isDigit = (c: number) => c >= 0x30 && c <= 0x39;

/** Whether a number's text is a JSON number as it is: [-+]? then a digit or '.' and a digit. */
function isJsonNumberStart(src: Uint8Array, start: number, end: number): boolean {
  let i = start;
  if (i < end && (src[i] === 0x2d || src[i] === 0x2b)) i++; // '-' '+'
  if (i < end && src[i] === 0x2e) i++; // '.'
  return i < end && isDigit(src[i]!);
}

function equalsAscii(src: Uint8Array, start: number, end: number, s: string): boolean {
  if (end - start !== s.length) return false;
  for (let i = 0; i < s.length; i++) if (src[start + i] !== s.charCodeAt(i)) return false;
  return true;
}

const single = new JsonWriter();

/** One value's JSON from its text (the encoders on the text's UTF-8 bytes: tests, one-offs). */
export function jsonOfText(kind: JsonKind, text: string): string {
  const bytes = Buffer.from(text, 'utf8');
  single.reset();
  single.value(kind, bytes, 0, bytes.length);
  return single.text();
}
