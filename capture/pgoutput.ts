/**
 * Decoder of PostgreSQL's logical replication stream: the CopyData frames of a walsender
 * (XLogData, primary keepalive) and, inside XLogData, the messages of the built-in `pgoutput`
 * plugin at protocol version 1 with `messages` on (PostgreSQL 14+). Pure: a Buffer in, a
 * discriminated union out. Reference: the PostgreSQL manual, "Streaming Replication Protocol" and
 * "Logical Replication Message Formats".
 *
 * LSNs are bigint (64-bit WAL positions); text values stay the server's text output, converted to
 * JSON by capture/row-image.ts, which knows the column types from the Relation message.
 */

/** One column value of a tuple: text, SQL NULL, or an unchanged TOASTed value the server did not resend. */
export type TupleValue = string | null | typeof UNCHANGED_TOAST;
export const UNCHANGED_TOAST = Symbol('unchanged-toast');

/** Tuple.start of a NULL column, and of an unchanged TOASTed one. */
export const NULL_COLUMN = -1;
export const UNCHANGED_COLUMN = -2;

/**
 * A tuple's columns left where the server sent them: for each, where its text starts in the frame
 * and where it ends. Capture writes the images from these bytes (capture/json-bytes.ts) without a
 * string per column; value() makes one where a column is needed as text (keys).
 */
export class Tuple {
  /** `spans`: start and end of each column's text, start NULL_COLUMN or UNCHANGED_COLUMN without one. */
  constructor(
    readonly frame: Buffer,
    private readonly spans: Int32Array,
  ) {}

  get length(): number {
    return this.spans.length >> 1;
  }

  /** Where column i's text starts in `frame`, or NULL_COLUMN, UNCHANGED_COLUMN. */
  start(i: number): number {
    return this.spans[2 * i]!;
  }

  end(i: number): number {
    return this.spans[2 * i + 1]!;
  }

  value(i: number): TupleValue {
    if (!(i >= 0 && i < this.length)) throw new ProtocolError(`a tuple of ${this.length} columns has no column ${i}`);
    const start = this.spans[2 * i]!;
    if (start === NULL_COLUMN) return null;
    if (start === UNCHANGED_COLUMN) return UNCHANGED_TOAST;
    return this.frame.toString('utf8', start, this.spans[2 * i + 1]!);
  }
}

export interface RelationColumn {
  name: string;
  typeOid: number;
  /** Part of the replica identity (every column is, under REPLICA IDENTITY FULL). */
  isKey: boolean;
}

export type PgoutputMessage =
  | { kind: 'begin'; finalLsn: bigint; commitTimeUs: bigint; xid: number }
  | { kind: 'commit'; commitLsn: bigint; endLsn: bigint; commitTimeUs: bigint }
  | {
      kind: 'relation';
      relationId: number;
      schema: string;
      table: string;
      replicaIdentity: string;
      columns: RelationColumn[];
    }
  | { kind: 'insert'; relationId: number; newTuple: Tuple }
  | {
      kind: 'update';
      relationId: number;
      /**
       * 'K': the old key (the key changed, or holds a value stored out of line); 'O': the whole old
       * row (REPLICA IDENTITY FULL); absent otherwise.
       */
      oldKind: 'K' | 'O' | null;
      oldTuple: Tuple | null;
      newTuple: Tuple;
    }
  | { kind: 'delete'; relationId: number; oldKind: 'K' | 'O'; oldTuple: Tuple }
  | { kind: 'truncate'; relationIds: number[]; cascade: boolean; restartIdentity: boolean }
  | { kind: 'message'; transactional: boolean; lsn: bigint; prefix: string; content: Buffer }
  | { kind: 'origin'; lsn: bigint; name: string }
  | { kind: 'type'; typeOid: number; schema: string; name: string };

/** A CopyData frame of the replication stream. */
export type ReplicationFrame =
  | { kind: 'xlogdata'; message: PgoutputMessage }
  | { kind: 'keepalive'; walEnd: bigint; sendTimeUs: bigint; replyRequested: boolean };

export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

/** Reads big-endian fields off a buffer, front to back. */
class Reader {
  at = 0;
  constructor(readonly buf: Buffer) {}
  byte(): number {
    return this.buf[this.at++]!;
  }
  char(): string {
    return String.fromCharCode(this.byte());
  }
  int16(): number {
    const v = this.buf.readInt16BE(this.at);
    this.at += 2;
    return v;
  }
  int32(): number {
    const v = this.buf.readInt32BE(this.at);
    this.at += 4;
    return v;
  }
  uint32(): number {
    const v = this.buf.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }
  skip(n: number): void {
    this.at += n;
  }
  int64(): bigint {
    const v = this.buf.readBigUInt64BE(this.at);
    this.at += 8;
    return v;
  }
  /** A NUL-terminated string. */
  cstring(): string {
    const end = this.buf.indexOf(0, this.at);
    if (end < 0) throw new ProtocolError('unterminated string in a pgoutput message');
    const s = this.buf.toString('utf8', this.at, end);
    this.at = end + 1;
    return s;
  }
  bytes(n: number): Buffer {
    const b = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return b;
  }
}

/** Whether a raw frame is a primary keepalive asking for a reply (without decoding the rest). */
export function isReplyRequest(buf: Buffer): boolean {
  // 'k', walEnd (8 bytes), sendTime (8 bytes), replyRequested (1 byte)
  return buf.length >= 18 && buf[0] === 0x6b && buf[17] === 1;
}

/** Decodes one CopyData payload of a START_REPLICATION stream. */
export function decodeFrame(buf: Buffer): ReplicationFrame {
  const r = new Reader(buf);
  const tag = r.char();
  if (tag === 'w') {
    // walStart, walEnd, sendTime: not needed (positions come with Commit messages and keepalives),
    // and not read: three BigInts per row message showed in the capture's allocations
    r.skip(24);
    return { kind: 'xlogdata', message: decodeMessage(r) };
  }
  if (tag === 'k')
    return { kind: 'keepalive', walEnd: r.int64(), sendTimeUs: r.int64(), replyRequested: r.byte() === 1 };
  throw new ProtocolError(`unknown replication frame ${JSON.stringify(tag)}`);
}

function decodeMessage(r: Reader): PgoutputMessage {
  const tag = r.char();
  switch (tag) {
    case 'B':
      return { kind: 'begin', finalLsn: r.int64(), commitTimeUs: r.int64(), xid: r.uint32() };
    case 'C':
      r.byte(); // flags (unused)
      return { kind: 'commit', commitLsn: r.int64(), endLsn: r.int64(), commitTimeUs: r.int64() };
    case 'R':
      return decodeRelation(r);
    case 'I': {
      const relationId = r.uint32();
      expectTag(r, 'N', 'insert');
      return { kind: 'insert', relationId, newTuple: decodeTuple(r) };
    }
    case 'U':
      return decodeUpdate(r);
    case 'D': {
      const relationId = r.uint32();
      const oldKind = r.char();
      if (oldKind !== 'K' && oldKind !== 'O') throw new ProtocolError(`delete without an old tuple (${oldKind})`);
      return { kind: 'delete', relationId, oldKind, oldTuple: decodeTuple(r) };
    }
    case 'T': {
      const n = r.int32();
      const options = r.byte();
      const relationIds = Array.from({ length: n }, () => r.uint32());
      return { kind: 'truncate', relationIds, cascade: (options & 1) !== 0, restartIdentity: (options & 2) !== 0 };
    }
    case 'M': {
      const transactional = (r.byte() & 1) !== 0;
      const lsn = r.int64();
      const prefix = r.cstring();
      const length = r.int32();
      return { kind: 'message', transactional, lsn, prefix, content: Buffer.from(r.bytes(length)) };
    }
    case 'O':
      return { kind: 'origin', lsn: r.int64(), name: r.cstring() };
    case 'Y':
      return { kind: 'type', typeOid: r.uint32(), schema: r.cstring(), name: r.cstring() };
    default:
      throw new ProtocolError(`unknown pgoutput message ${JSON.stringify(tag)}`);
  }
}

function decodeRelation(r: Reader): PgoutputMessage {
  const relationId = r.uint32();
  const schema = r.cstring();
  const table = r.cstring();
  const replicaIdentity = r.char();
  const n = r.int16();
  const columns: RelationColumn[] = [];
  for (let i = 0; i < n; i++) {
    const flags = r.byte();
    const name = r.cstring();
    const typeOid = r.uint32();
    r.int32(); // type modifier (unused)
    columns.push({ name, typeOid, isKey: (flags & 1) !== 0 });
  }
  return { kind: 'relation', relationId, schema, table, replicaIdentity, columns };
}

function decodeUpdate(r: Reader): PgoutputMessage {
  const relationId = r.uint32();
  let tag = r.char();
  let oldKind: 'K' | 'O' | null = null;
  let oldTuple: Tuple | null = null;
  if (tag === 'K' || tag === 'O') {
    oldKind = tag;
    oldTuple = decodeTuple(r);
    tag = r.char();
  }
  if (tag !== 'N') throw new ProtocolError(`update without a new tuple (${tag})`);
  return { kind: 'update', relationId, oldKind, oldTuple, newTuple: decodeTuple(r) };
}

function expectTag(r: Reader, want: string, what: string): void {
  const got = r.char();
  if (got !== want) throw new ProtocolError(`${what}: expected ${want}, got ${JSON.stringify(got)}`);
}

function decodeTuple(r: Reader): Tuple {
  const n = r.int16();
  const spans = new Int32Array(2 * n);
  for (let i = 0; i < n; i++) {
    const kind = r.byte();
    if (kind === 0x74) {
      // 't': text, left in the frame
      const length = r.int32();
      if (length < 0) throw new ProtocolError(`a tuple column of length ${length}`);
      spans[2 * i] = r.at;
      spans[2 * i + 1] = r.at + length;
      r.skip(length);
    } else if (kind === 0x6e)
      spans[2 * i] = NULL_COLUMN; // 'n'
    else if (kind === 0x75)
      spans[2 * i] = UNCHANGED_COLUMN; // 'u'
    else
      throw new ProtocolError(
        `tuple column of kind ${JSON.stringify(String.fromCharCode(kind))} (binary mode is not used)`,
      );
  }
  if (r.at > r.buf.length) throw new ProtocolError('a tuple runs past the end of its message');
  return new Tuple(r.buf, spans);
}

/** Microseconds since 2000-01-01 UTC (PostgreSQL's epoch) ↔ JavaScript milliseconds. */
const PG_EPOCH_MS = 946_684_800_000;
export const pgTimeToMs = (us: bigint): number => Number(us / 1000n) + PG_EPOCH_MS;
export const msToPgTime = (ms: number): bigint => BigInt(Math.round(ms - PG_EPOCH_MS)) * 1000n;

/** A standby status update: tells the server how far the client has written, flushed and applied. */
export function standbyStatusUpdate(lsn: bigint, nowMs: number, replyRequested = false): Buffer {
  const b = Buffer.alloc(34);
  b.write('r', 0);
  b.writeBigUInt64BE(lsn, 1);
  b.writeBigUInt64BE(lsn, 9);
  b.writeBigUInt64BE(lsn, 17);
  b.writeBigUInt64BE(msToPgTime(nowMs), 25);
  b.writeUInt8(replyRequested ? 1 : 0, 33);
  return b;
}

/** pg_lsn text form (`16/B374D848`) ↔ bigint. */
export function parseLsn(text: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  if (!m) throw new ProtocolError(`not an LSN: ${JSON.stringify(text)}`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}
export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}
