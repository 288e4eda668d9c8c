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
import { knowRelation, rowsOfChange, rowsOfTruncate, type CapturedRow, type KnownRelation } from './row-image';

export interface CapturedTransaction {
  /** End of the commit record: the slot position that confirms this transaction. */
  endLsn: bigint;
  /** The source transaction's id (32 bits, as pgoutput sends it). */
  xid: number;
  /** Watermarks of chunks read from the source (capture/watermark-read.ts), in message order. */
  watermarks?: { chunk: string; edge: 'low' | 'high' }[];
  commitMs: number;
  rows: CapturedRow[];
  ticks: Tick[];
  /** A hand-over marker this transaction carried (capture/mode-switch.ts). */
  switchMarker?: { id: string; to: 'logical' | 'trigger' };
}

interface OpenTransaction {
  xid: number;
  watermarks?: { chunk: string; edge: 'low' | 'high' }[];
  rows: CapturedRow[];
  ticks: Tick[];
  commitMs: number;
  switchMarker?: { id: string; to: 'logical' | 'trigger' };
}

export class TransactionAssembler {
  private readonly relations = new Map<number, KnownRelation>();
  private open: OpenTransaction | null = null;
  /** Messages of tables outside the contract (a publication wider than ours), skipped. */
  skippedRows = 0;

  /** True between a transaction's Begin and its Commit: a position inside it is not yet safe to confirm. */
  get inTransaction(): boolean {
    return this.open !== null;
  }

  /** Feeds one message; returns the transaction it completed, if it was a Commit. */
  push(msg: PgoutputMessage): CapturedTransaction | null {
    switch (msg.kind) {
      case 'begin':
        this.open = { xid: msg.xid, rows: [], ticks: [], commitMs: 0 };
        return null;
      case 'relation':
        this.relations.set(msg.relationId, knowRelation(msg));
        return null;
      case 'insert':
      case 'update':
      case 'delete': {
        const rel = this.relations.get(msg.relationId);
        if (!rel) throw new Error(`pgoutput: a row of relation ${msg.relationId} before its Relation message`);
        const rows = rowsOfChange(rel, msg);
        if (!rel.table) this.skippedRows++;
        this.current(msg.kind).rows.push(...rows);
        return null;
      }
      case 'truncate':
        this.current('truncate').rows.push(...rowsOfTruncate(msg.relationIds.map((id) => this.relations.get(id))));
        return null;
      case 'message': {
        if (msg.prefix !== TICK_PREFIX || !msg.transactional || !this.open) return null;
        const m = decodePipelineMessage(msg.content);
        if (m?.kind === 'tick') this.open.ticks.push({ at: m.at });
        if (m?.kind === 'switch') this.open.switchMarker = { id: m.id, to: m.to };
        if (m?.kind === 'watermark') (this.open.watermarks ??= []).push({ chunk: m.chunk, edge: m.edge });
        return null;
      }
      case 'commit': {
        const done = this.current('commit');
        this.open = null;
        return {
          endLsn: msg.endLsn,
          xid: done.xid,
          ...(done.watermarks ? { watermarks: done.watermarks } : {}),
          commitMs: done.commitMs,
          rows: done.rows,
          ticks: done.ticks,
          ...(done.switchMarker ? { switchMarker: done.switchMarker } : {}),
        };
      }
      default:
        return null; // origin, type: nothing to capture
    }
  }

  /** Begin carries the commit time; kept for the transaction's rows. */
  noteCommitTime(ms: number): void {
    if (this.open) this.open.commitMs = ms;
  }

  private current(what: string): OpenTransaction {
    if (!this.open) throw new Error(`pgoutput: ${what} outside a transaction`);
    return this.open;
  }
}
