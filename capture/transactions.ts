/**
 * Assembles the pgoutput stream into committed source transactions, in commit order (the order
 * the walsender sends them: pgoutput without `streaming` sends a transaction whole, at its commit,
 * so an open transaction on the source holds nothing back here).
 *
 * Each transaction becomes its outbox rows plus the pipeline's own messages it carried (ticks:
 * see capture/ticks.ts).
 */
import { decodePipelineMessage, TICK_PREFIX, type Tick } from './ticks';
import type { PgoutputMessage } from './pgoutput';
import {
  jsonKindOf,
  knowRelation,
  rowsOfChange,
  rowsOfTruncate,
  type CapturedRow,
  type KnownRelation,
} from './row-image';
import type { SourceTable } from './source-tables';

export interface CapturedTransaction {
  /** End of the commit record: the slot position that confirms this transaction. */
  endLsn: bigint;
  /** The source transaction's id (32 bits, as pgoutput sends it). */
  xid: number;
  /** Watermarks of chunks read from the source (capture/watermark-read.ts), in message order. */
  watermarks?: { chunk: string; edge: 'low' | 'high'; source?: string; token?: string }[];
  commitMs: number;
  rows: CapturedRow[];
  /** This capture's own ticks (coverage and the horizon). */
  ticks: Tick[];
  /** Snapshots of ticks other writers put in the stream (another pipeline, an older worker): the horizon only. */
  otherTickSnapshots?: string[];
  /** A hand-over marker this transaction carried (capture/mode-switch.ts). */
  switchMarker?: { id: string; to: 'logical' | 'trigger' };
  /**
   * Why changes of this transaction could not be captured (a contract table written under another
   * name): the write marks the source for a refill, as for a publication changed and put back.
   */
  uncaptured?: string;
}

/** The replication stream broke the order PostgreSQL sends it in: the session must start again. */
export class StreamOrderError extends Error {
  constructor(what: string) {
    super(`pgoutput stream out of order: ${what}; reading again from the slot's confirmed position`);
    this.name = 'StreamOrderError';
  }
}

interface OpenTransaction {
  xid: number;
  watermarks?: { chunk: string; edge: 'low' | 'high'; source?: string; token?: string }[];
  rows: CapturedRow[];
  ticks: Tick[];
  otherTickSnapshots?: string[];
  commitMs: number;
  switchMarker?: { id: string; to: 'logical' | 'trigger' };
  uncaptured?: string;
}

export class TransactionAssembler {
  private readonly relations = new Map<number, KnownRelation>();
  /**
   * Which relation (by OID, what pgoutput's relation id is) is which contract table: from the
   * source's catalog as the session opened, and from every Relation message naming one.
   */
  private open: OpenTransaction | null = null;
  /** The last commit's end position: the stream sends transactions in commit order, so each is past it. */
  private lastEndLsn = 0n;
  /** Messages of tables outside the contract (a publication wider than ours), skipped. */
  skippedRows = 0;

  private readonly contractOids = new Map<number, SourceTable>();
  /**
   * The source's own types as the session opened (sourceTypes): a domain's base type, null for
   * any other. Unset: every type is taken as it is (tests of the stream alone).
   */
  private types: ReadonlyMap<number, number | null> | null = null;
  /** Types the stream announced (Type messages) that the session did not know as it opened. */
  private readonly typesUnknown = new Map<number, string>();

  /** `tickWriter`: whose ticks count for coverage (the capture's slot, capture/ticks.ts); none: every tick. */
  constructor(private readonly tickWriter?: string) {}

  /**
   * The contract tables' OIDs in the source's catalog as the session opens (contractTableOids): a
   * Relation message the session sends first for one of them may name it otherwise.
   */
  knowContractTables(oids: ReadonlyMap<number, SourceTable>): void {
    for (const [oid, table] of oids) this.contractOids.set(oid, table);
  }

  /**
   * The source's own types (sourceTypes), as the session opens and again after a change of a type
   * it did not know: domains are written as their base type. Relations waiting on a type now known
   * are captured again from their next change.
   */
  knowTypes(types: ReadonlyMap<number, number | null>): void {
    this.types = types;
    for (const oid of this.typesUnknown.keys()) if (types.has(oid)) this.typesUnknown.delete(oid);
    for (const rel of this.relations.values()) {
      if (!rel.typesUnknown || rel.columns.some((c) => this.typesUnknown.has(c.typeOid))) continue;
      rel.kinds = rel.columns.map((c) => jsonKindOf(types.get(c.typeOid) ?? c.typeOid));
      delete rel.typesUnknown;
    }
  }

  /** A watermark or hand-over marker of this capture's, or written before they named their writer. */
  private ours(by: string | undefined): boolean {
    return by === undefined || this.tickWriter === undefined || by === this.tickWriter;
  }

  /** True between a transaction's Begin and its Commit: a position inside it is not yet safe to confirm. */
  get inTransaction(): boolean {
    return this.open !== null;
  }

  /** Feeds one message; returns the transaction it completed, if it was a Commit. */
  push(msg: PgoutputMessage): CapturedTransaction | null {
    switch (msg.kind) {
      case 'begin':
        // A stream out of order (never sent by PostgreSQL; a broken connection could) must not be
        // read on: the capture skips transactions at or below what it wrote, so a later one read
        // first would make it skip the earlier ones for good. The error ends the session, and a new
        // one reads again from the slot's confirmed position.
        if (this.open)
          throw new StreamOrderError(`a Begin (xid ${msg.xid}) inside the open transaction xid ${this.open.xid}`);
        this.open = { xid: msg.xid, rows: [], ticks: [], commitMs: 0 };
        return null;
      case 'type':
        // a type made after the session opened: maybe a domain over a number, which to_json writes
        // as a number and this session would write as text
        if (this.types && !this.types.has(msg.typeOid)) this.typesUnknown.set(msg.typeOid, `${msg.schema}.${msg.name}`);
        return null;
      case 'relation':
        this.learnRelation(msg);
        return null;
      case 'insert':
      case 'update':
      case 'delete':
        this.pushChange(msg);
        return null;
      case 'truncate': {
        const rels = msg.relationIds.map((id) => this.relations.get(id));
        for (const rel of rels)
          if (rel?.renamedFrom)
            this.markUncaptured('truncate', `while it was named ${rel.qualifiedName}`, rel.renamedFrom);
        this.current('truncate').rows.push(...rowsOfTruncate(rels));
        return null;
      }
      case 'message':
        this.pushMessage(msg);
        return null;
      case 'commit':
        return this.commit(msg);
      default:
        return null; // origin: nothing to capture
    }
  }

  private learnRelation(msg: Extract<PgoutputMessage, { kind: 'relation' }>): void {
    const types = this.types;
    const rel = knowRelation(msg, types ? (oid) => types.get(oid) ?? oid : undefined);
    const unknown = msg.columns.find((c) => this.typesUnknown.has(c.typeOid));
    if (unknown)
      rel.typesUnknown = `whose column ${unknown.name} is of type ${this.typesUnknown.get(unknown.typeOid)}, made after the capture session opened`;
    if (rel.table) {
      // the name now belongs to this relation: another that had it was dropped or renamed away
      for (const [oid, t] of this.contractOids) if (t === rel.table) this.contractOids.delete(oid);
      this.contractOids.set(msg.relationId, rel.table);
    } else {
      const was = this.contractOids.get(msg.relationId);
      if (was) rel.renamedFrom = was;
    }
    this.relations.set(msg.relationId, rel);
  }

  private pushChange(msg: Extract<PgoutputMessage, { kind: 'insert' | 'update' | 'delete' }>): void {
    const rel = this.relations.get(msg.relationId);
    if (!rel) throw new Error(`pgoutput: a row of relation ${msg.relationId} before its Relation message`);
    if (rel.renamedFrom)
      return this.markUncaptured(msg.kind, `while it was named ${rel.qualifiedName}`, rel.renamedFrom);
    if (rel.keyMissing && rel.table) return this.markUncaptured(msg.kind, rel.keyMissing, rel.table);
    if (rel.typesUnknown && rel.table) return this.markUncaptured(msg.kind, rel.typesUnknown, rel.table);
    if (rel.identityLacks && msg.kind !== 'insert')
      return this.markUncaptured(msg.kind, `whose ${rel.identityLacks}`, rel.table!);
    const rows = rowsOfChange(rel, msg);
    if (!rel.table) this.skippedRows++;
    this.current(msg.kind).rows.push(...rows);
  }

  private pushMessage(msg: Extract<PgoutputMessage, { kind: 'message' }>): void {
    if (msg.prefix !== TICK_PREFIX || !msg.transactional || !this.open) return;
    const m = decodePipelineMessage(msg.content);
    if (m?.kind === 'tick') {
      if (this.tickWriter === undefined || m.by === this.tickWriter)
        this.open.ticks.push({
          at: m.at,
          ...(m.snapshot ? { snapshot: m.snapshot } : {}),
          ...(m.publication ? { publication: m.publication } : {}),
          ...(m.tables ? { tables: m.tables } : {}),
        });
      else if (m.snapshot) (this.open.otherTickSnapshots ??= []).push(m.snapshot);
    }
    // another pipeline's hand-over marker, or chunk (its own chunk ids), in the same WAL: not ours
    if (m?.kind === 'switch' && this.ours(m.by)) this.open.switchMarker = { id: m.id, to: m.to };
    if (m?.kind === 'watermark' && this.ours(m.by))
      (this.open.watermarks ??= []).push({
        chunk: m.chunk,
        edge: m.edge,
        ...(m.source !== undefined ? { source: m.source } : {}),
        ...(m.token !== undefined ? { token: m.token } : {}),
      });
  }

  private commit(msg: Extract<PgoutputMessage, { kind: 'commit' }>): CapturedTransaction {
    const done = this.current('commit');
    if (msg.endLsn <= this.lastEndLsn)
      throw new StreamOrderError(
        `the commit of xid ${done.xid} ends at ${msg.endLsn}, not after the previous commit's ${this.lastEndLsn}`,
      );
    this.lastEndLsn = msg.endLsn;
    this.open = null;
    return {
      endLsn: msg.endLsn,
      xid: done.xid,
      ...(done.watermarks ? { watermarks: done.watermarks } : {}),
      commitMs: done.commitMs,
      rows: done.rows,
      ticks: done.ticks,
      ...(done.otherTickSnapshots ? { otherTickSnapshots: done.otherTickSnapshots } : {}),
      ...(done.switchMarker ? { switchMarker: done.switchMarker } : {}),
      ...(done.uncaptured ? { uncaptured: done.uncaptured } : {}),
    };
  }

  /** Begin carries the commit time; kept for the transaction's rows. */
  noteCommitTime(ms: number): void {
    if (this.open) this.open.commitMs = ms;
  }

  /** The open transaction holds a change that cannot be captured: its write marks the source for a refill. */
  private markUncaptured(what: string, why: string, table: SourceTable): void {
    this.current(what).uncaptured ??= `${/^[aeiou]/.test(what) ? 'an' : 'a'} ${what} of shop.${table} ${why}`;
  }

  private current(what: string): OpenTransaction {
    if (!this.open) throw new Error(`pgoutput: ${what} outside a transaction`);
    return this.open;
  }
}
