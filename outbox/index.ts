/**
 * The outbox and its consumers: cursors (cursor.ts), reads of the rows between two snapshots
 * (delta.ts), the drain's lease and lock (lease.ts), drain shards and their layout (shards.ts),
 * what the drain records beside its cursor (drain-log.ts), what status and metrics report
 * (status.ts), and the holds that keep rows for readers without a cursor (holds.ts). Every module
 * that reads or writes the pipeline's tables goes through here.
 */
export * from './cursor';
export * from './delta';
export * from './lease';
export * from './status';
export * from './shards';
export * from './drain-log';
export * from './pass-start';
export * from './freeze';
export * from './holds';
