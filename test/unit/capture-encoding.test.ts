/**
 * The pure parts of capture: LSN text, column text → its to_json form (the byte encoders of
 * capture/json-bytes.ts), slot names. (The decoder and the images as a whole are checked against
 * the real server in logical-capture.test.ts.)
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeFrame, formatLsn, isReplyRequest, parseLsn } from '../../capture/pgoutput';
import { JsonKind, jsonOfText, JsonWriter } from '../../capture/json-bytes';
import { slotName } from '../../capture/sources';

describe('capture encodings', () => {
  it('LSNs round-trip between pg_lsn text and bigint', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (lsn) => parseLsn(formatLsn(lsn)) === lsn));
    expect(parseLsn('16/B374D848')).toBe(0x16b374d848n);
    expect(() => parseLsn('16-B3')).toThrow(/not an LSN/);
  });

  // The stream answers a keepalive's reply request on arrival, from the raw frame (frames are
  // decoded only when taken): the quick check must agree with the decoder on every frame.
  it('a keepalive asking for a reply is told from its raw bytes as the decoder tells it', () => {
    const keepalive = fc
      .tuple(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0n, max: (1n << 63n) - 1n }), fc.nat(3))
      .map(([walEnd, sendTime, reply]) => {
        const b = Buffer.alloc(18);
        b.write('k', 0, 'latin1');
        b.writeBigUInt64BE(walEnd, 1);
        b.writeBigInt64BE(sendTime, 9);
        b[17] = reply;
        return b;
      });
    fc.assert(
      fc.property(keepalive, (b) => {
        const f = decodeFrame(b);
        expect(isReplyRequest(b)).toBe(f.kind === 'keepalive' && f.replyRequested);
      }),
    );
    // an XLogData frame is never a reply request, whatever its bytes
    const xlog = Buffer.alloc(30, 1);
    xlog.write('w', 0, 'latin1');
    expect(isReplyRequest(xlog)).toBe(false);
  });

  const timestampJson = (text: string) => jsonOfText(JsonKind.Timestamp, text);
  const numberJson = (text: string) => jsonOfText(JsonKind.Number, text);

  it('timestamps are written as to_json writes them', () => {
    expect(timestampJson('2026-12-03 19:35:17.123456+00')).toBe('"2026-12-03T19:35:17.123456+00:00"');
    expect(timestampJson('0044-03-15 12:00:00.5+00 BC')).toBe('"0044-03-15T12:00:00.5+00:00 BC"');
    expect(timestampJson('12345-01-01 00:00:00+00')).toBe('"12345-01-01T00:00:00+00:00"');
    expect(timestampJson('infinity')).toBe('"infinity"');
    expect(timestampJson('2026-12-03 19:35:17')).toBe('"2026-12-03T19:35:17"');
  });

  // The encoders run once per column of every captured row, on the frame's bytes; these are the
  // readable definitions, on strings, they must agree with.
  const timestampReference = (text: string) => {
    if (text === 'infinity' || text === '-infinity') return JSON.stringify(text);
    const bc = text.endsWith(' BC');
    let s = (bc ? text.slice(0, -3) : text).replace(' ', 'T');
    if (/[+-]\d\d$/.test(s)) s += ':00';
    return JSON.stringify(bc ? `${s} BC` : s);
  };
  const numberReference = (text: string) => (/^[-+]?(?:\d|\.\d)/.test(text) ? text : JSON.stringify(text));

  it('the timestamp encoder agrees with its definition on every shape the server writes', () => {
    const two = fc.integer({ min: 0, max: 99 }).map((n) => String(n).padStart(2, '0'));
    const timestamp = fc
      .tuple(
        fc.integer({ min: 1, max: 294276 }).map((y) => String(y).padStart(4, '0')),
        two,
        two,
        two,
        two,
        two,
        fc.option(
          fc.integer({ min: 0, max: 999999 }).map((f) => `.${f}`),
          { nil: '' },
        ),
        fc.constantFrom('', '+00', '-05', '+05:30', '-03:30:15'),
        fc.constantFrom('', ' BC'),
      )
      .map(([y, mo, d, h, mi, se, frac, off, bc]) => `${y}-${mo}-${d} ${h}:${mi}:${se}${frac}${off}${bc}`);
    fc.assert(
      fc.property(fc.oneof(timestamp, fc.constantFrom('infinity', '-infinity')), (t) => {
        expect(timestampJson(t)).toBe(timestampReference(t));
      }),
    );
  });

  it('the number encoder agrees with its definition: numbers as they are, NaN and the infinities quoted', () => {
    const numeric = fc.oneof(
      fc.double().map(String),
      fc.integer().map(String),
      fc.constantFrom('NaN', 'Infinity', '-Infinity', '.5', '-.5', '+1', '1e10', '', '-', '.'),
      fc.string({ maxLength: 4 }),
    );
    fc.assert(
      fc.property(numeric, (n) => {
        expect(numberJson(n)).toBe(numberReference(n));
      }),
    );
  });

  it('text is written as JSON.stringify writes it, whatever its characters', () => {
    const text = fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 40 }),
      fc.string({ unit: fc.integer({ min: 0, max: 0x7f }).map((c) => String.fromCharCode(c)), maxLength: 40 }),
      fc.constantFrom('', '"', '\\', 'tab\there', 'line\nbreak\r\n', '\u0000\u001f\u007f', 'é日本語🚀', '\b\f'),
    );
    fc.assert(
      fc.property(text, (t) => {
        expect(jsonOfText(JsonKind.Text, t)).toBe(JSON.stringify(t));
      }),
    );
  });

  // The old encoders decoded each column's bytes (UTF-8, U+FFFD for a bad sequence) before
  // quoting it; the image is now decoded once, whole. Every byte around a value is ASCII, which
  // never continues a sequence, so any bytes come out the same.
  it('text of any bytes, valid UTF-8 or not, comes out as quoting its decoded text would', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        const frame = Buffer.from([0x7b, ...bytes, 0x7d]); // framed by ASCII, as in an image
        const w = new JsonWriter();
        w.byte(0x5b);
        w.value(JsonKind.Text, frame, 1, frame.length - 1);
        w.byte(0x5d);
        expect(w.text()).toBe(`[${JSON.stringify(Buffer.from(bytes).toString('utf8'))}]`);
      }),
    );
  });

  it('booleans and json values are written as to_json writes them', () => {
    expect(jsonOfText(JsonKind.Bool, 't')).toBe('true');
    expect(jsonOfText(JsonKind.Bool, 'f')).toBe('false');
    expect(jsonOfText(JsonKind.Raw, '{"a": [1, "x\\"y"]}')).toBe('{"a": [1, "x\\"y"]}');
  });

  it('slot names are valid, distinct per pipeline database and source, and at most 63 characters', () => {
    expect(slotName('fresh_badges', 'inventory')).toBe('fb_fresh_badges_inventory');
    const long = slotName('x'.repeat(80), 'orders');
    expect(long).toMatch(/^[a-z0-9_]{1,63}$/);
    expect(long).not.toBe(slotName('x'.repeat(81), 'orders'));
    expect(slotName('Fresh-Badges', 'shop')).toBe('fb_fresh_badges_shop');
  });
});
